/*
 * core/clock.c - the store's notion of "now".
 *
 * Every expiry decision reads the time through once__now, so a test can move
 * time with options.clock.  The default is CLOCK_REALTIME in whole seconds:
 * expiry times are unix timestamps shared with other systems (tokens carry
 * `exp`), so a monotonic clock would be the wrong unit.
 */
#include <time.h>

#include "internal.h"

int64_t once__now(const once_store *s)
{
	if (s->opt.clock != NULL)
		return s->opt.clock(s->opt.clock_ctx);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}
