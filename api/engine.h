/*
 * api/engine.h - the table of operations behind the public API.
 *
 * Layering (arrows point one way):
 *
 *     include/oncestore.h  (the one public header)
 *            |
 *     api/dispatch.c       checks what every engine would check the same
 *            |             way (NULL store, NULL ticket), then calls
 *            v             through the store's engine table
 *     +------+-------+
 *     |              |
 *   core/ + wal/    pg/     the embedded engine and the PostgreSQL engine
 *
 * An engine never calls a public function of the API: it implements the
 * table below and uses only leaf helpers (status names, hashing, the
 * CSPRNG) that call nothing above them.
 *
 * A store of either engine begins with a pointer to its engine's table,
 * so the dispatcher can read it through the opaque once_store pointer
 * (C11 6.7.2.1: a pointer to a structure, suitably converted, points to
 * its first member).
 *
 * Every write takes a ticket pointer: NULL for the blocking form; for the
 * _async form the dispatcher has checked it is not NULL and set it to 0,
 * and the engine stores the record's log position there if it logged one
 * (the PostgreSQL engine never does: its writes are committed when they
 * return).  Each engine counts its own calls in once_stats.ops.
 */
#ifndef ONCE_API_ENGINE_H
#define ONCE_API_ENGINE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oncestore.h"

struct once__engine {
	const char *name; /* "embedded" or "postgres", for messages */

	/* Lifecycle. */
	once_status (*close)(once_store *s);
	once_status (*checkpoint)(once_store *s);
	once_status (*sweep)(once_store *s, once_sweep_counts *out);
	void (*stats)(once_store *s, struct once_stats *out);

	/* Authorization codes and the access tokens minted from them. */
	once_status (*code_put)(once_store *s, const void *hash, size_t hlen, const once_code *c,
	                        once_ticket *ticket);
	once_status (*code_get)(once_store *s, const void *hash, size_t hlen, once_code **out);
	once_status (*code_take)(once_store *s, const void *hash, size_t hlen, once_code **out,
	                         once_code_meta **meta, once_ticket *ticket);
	once_status (*code_finalize)(once_store *s, const void *hash, size_t hlen,
	                             once_ticket *ticket);
	once_status (*access_record)(once_store *s, const void *family_id, size_t flen,
	                             const void *jti, size_t jlen, int64_t expires_at,
	                             once_ticket *ticket);
	once_status (*access_revoke)(once_store *s, const void *family_id, size_t flen,
	                             once_ticket *ticket);
	bool (*access_revoked)(once_store *s, const void *jti, size_t jlen);

	/* Refresh tokens. */
	once_status (*refresh_insert)(once_store *s, const void *hash, size_t hlen,
	                              const once_refresh *r, once_ticket *ticket);
	once_status (*refresh_get)(once_store *s, const void *hash, size_t hlen,
	                           once_refresh **out);
	once_status (*refresh_consume)(once_store *s, const void *hash, size_t hlen,
	                               once_refresh **out, once_ticket *ticket);
	once_status (*refresh_remember)(once_store *s, const void *hash, size_t hlen,
	                                const void *succ, size_t n, once_ticket *ticket);
	once_status (*refresh_rotate)(once_store *s, const void *parent, size_t plen,
	                              const void *child, size_t clen, const once_refresh *succ,
	                              const void *payload, size_t n, once_refresh **parent_out,
	                              once_ticket *ticket);
	once_status (*refresh_revoke)(once_store *s, const void *family_id, size_t flen,
	                              once_ticket *ticket);

	/* DPoP nonces and the proof replay cache. */
	once_status (*nonce_issue)(once_store *s, int64_t ttl_seconds,
	                           char out[ONCE_NONCE_LEN + 1], once_ticket *ticket);
	bool (*nonce_valid)(once_store *s, const void *nonce, size_t len);
	once_status (*nonce_accept)(once_store *s, const void *nonce, size_t len,
	                            int64_t ttl_seconds, once_ticket *ticket);
	once_status (*replay_check)(once_store *s, const void *jti, size_t len,
	                            int64_t ttl_seconds, once_ticket *ticket);

	/* Tickets (see "Non-blocking durable writes" in the header). */
	int (*ticket_fd)(once_store *s);
	once_status (*tickets_durable)(once_store *s, once_ticket *upto);
	once_status (*tickets_drain)(once_store *s, int fd, once_ticket *upto);
	once_status (*ticket_wait)(once_store *s, once_ticket t);
};

/* A line through the host's log callback (options.log; nothing when it
 * is NULL), formatted printf-style and cut at 511 bytes: the one way both
 * engines speak to the operator (api/options.c). */
void once__logv(const once_options *o, once_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
void once__logf(const once_options *o, once_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The engines' open functions; once_open picks one by the options (which
 * it has already checked for dir and postgres both set). */
once_status once__mem_open(const once_options *o, once_store **out);
once_status once__pg_open(const once_options *o, once_store **out);

#endif /* ONCE_API_ENGINE_H */
