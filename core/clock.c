/*
 * core/clock.c - the store's notion of "now".
 *
 * Every expiry decision reads the time through once__now, so a test can move
 * time with options.clock.  The default is CLOCK_REALTIME in whole seconds:
 * expiry times are unix timestamps shared with other systems (tokens carry
 * `exp`), so a monotonic clock would be the wrong unit.
 *
 * It is read with time(2), not clock_gettime(CLOCK_REALTIME): the same
 * clock, as the kernel's second at its last tick (vDSO, no system call),
 * which is what a gateway's own time(NULL) reads when it computes an
 * expires_at.  The finer reading changes nothing of whole seconds but
 * where, within one tick (1-10 ms), each second begins; it cost 44 ns a
 * call against 4.6 ns on the Intel 2-vCPU VM of issue 10's bench, where a
 * take or a nonce accept is about 550 ns in all and reads the clock once.
 *
 * The reading is clamped into [ONCE_TIME_MIN, ONCE_TIME_MAX] here, the one
 * place the store reads a clock (oncestore.h, "Times"; internal.h): a
 * clock at INT64_MIN or INT64_MAX must not reach `now - 1`, `now + ttl`
 * or a sweep's walk over the seconds that came due.
 */
#include <time.h>

#include "internal.h"

int64_t once__now(const once_store *s)
{
	if (s->opt.clock != NULL)
		return once__time_clamp(s->opt.clock(s->opt.clock_ctx));
	return once__time_clamp((int64_t)time(NULL));
}
