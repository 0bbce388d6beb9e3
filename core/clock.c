/*
 * core/clock.c - the store's notion of "now".
 *
 * Every expiry decision reads the time through once__now, so a test can move
 * time with options.clock.  The default is CLOCK_REALTIME in whole seconds:
 * expiry times are unix timestamps shared with other systems (tokens carry
 * `exp`), so a monotonic clock would be the wrong unit.
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
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return once__time_clamp((int64_t)ts.tv_sec);
}
