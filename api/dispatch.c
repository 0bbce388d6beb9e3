/*
 * api/dispatch.c - the public functions of include/oncestore.h that act on
 * a store: each checks what both engines would check the same way (a NULL
 * store, a NULL ticket) and calls through the store's engine table
 * (api/engine.h).  An engine never calls back into this file.
 */
#include <errno.h>

#include <string.h>

#include "engine.h"
#include "oncestore.h"

/* Both engines' stores begin with the engine pointer (api/engine.h). */
static const struct once__engine *engine(once_store *s)
{
	return *(const struct once__engine *const *)(const void *)s;
}

/* An _async call's ticket: required, and 0 until the engine logs a record. */
static bool ticket_start(once_store *s, once_ticket *ticket)
{
	if (ticket != NULL)
		*ticket = 0;
	return s != NULL && ticket != NULL;
}

ONCE_API once_status once_open(const once_options *o, once_store **out)
{
	once_options defaults;
	if (o == NULL) {
		once_options_init(&defaults);
		o = &defaults;
	}
	if (out == NULL)
		return ONCE_INVALID;
	if (o->dir != NULL && o->postgres != NULL) {
		if (o->log != NULL)
			o->log(o->log_ctx, ONCE_LOG_ERROR,
			       "options: dir and postgres are both set; a store has one engine");
		return ONCE_INVALID;
	}
	if (o->read_only && (o->dir == NULL || o->postgres != NULL)) {
		if (o->log != NULL)
			o->log(o->log_ctx, ONCE_LOG_ERROR,
			       "options: read_only reads a data directory: it needs dir (and no postgres)");
		return ONCE_INVALID;
	}
	return o->postgres != NULL ? once__pg_open(o, out) : once__mem_open(o, out);
}

ONCE_API once_status once_close(once_store *s)
{
	return s == NULL ? ONCE_INVALID : engine(s)->close(s);
}

ONCE_API once_status once_checkpoint(once_store *s)
{
	return s == NULL ? ONCE_INVALID : engine(s)->checkpoint(s);
}

ONCE_API once_status once_sweep(once_store *s, once_sweep_counts *out)
{
	return s == NULL ? ONCE_INVALID : engine(s)->sweep(s, out);
}

ONCE_API void once_stats_read(once_store *s, struct once_stats *out, size_t out_size)
{
	if (s == NULL || out == NULL)
		return;
	/* The engines fill this library's whole struct; the caller gets the
	 * prefix its own struct has room for, and zeros past this library's
	 * end (include/oncestore.h, once_stats_read). */
	struct once_stats full;
	memset(&full, 0, sizeof full);
	engine(s)->stats(s, &full);
	size_t n = out_size < sizeof full ? out_size : sizeof full;
	memcpy(out, &full, n);
	if (out_size > n)
		memset((char *)out + n, 0, out_size - n);
}

/* ---- authorization codes and access tokens ---- */

ONCE_API once_status once_code_put(once_store *s, const void *hash, size_t hlen, const once_code *c)
{
	return s == NULL ? ONCE_INVALID : engine(s)->code_put(s, hash, hlen, c, NULL);
}

ONCE_API once_status once_code_put_async(once_store *s, const void *hash, size_t hlen,
                                         const once_code *c, once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->code_put(s, hash, hlen, c, ticket);
}

ONCE_API once_status once_code_get(once_store *s, const void *hash, size_t hlen, once_code **out)
{
	return s == NULL ? ONCE_INVALID : engine(s)->code_get(s, hash, hlen, out);
}

ONCE_API once_status once_code_take(once_store *s, const void *hash, size_t hlen, once_code **out,
                                    once_code_meta **meta)
{
	return s == NULL ? ONCE_INVALID : engine(s)->code_take(s, hash, hlen, out, meta, NULL);
}

ONCE_API once_status once_code_take_async(once_store *s, const void *hash, size_t hlen,
                                          once_code **out, once_code_meta **meta,
                                          once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->code_take(s, hash, hlen, out, meta, ticket);
}

ONCE_API once_status once_code_finalize(once_store *s, const void *hash, size_t hlen)
{
	return s == NULL ? ONCE_INVALID : engine(s)->code_finalize(s, hash, hlen, NULL);
}

ONCE_API once_status once_code_finalize_async(once_store *s, const void *hash, size_t hlen,
                                              once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->code_finalize(s, hash, hlen, ticket);
}

ONCE_API once_status once_code_record_access_token(once_store *s, const void *family_id,
                                                   size_t flen, const void *jti, size_t jlen,
                                                   int64_t expires_at)
{
	if (s == NULL)
		return ONCE_INVALID;
	return engine(s)->access_record(s, family_id, flen, jti, jlen, expires_at, NULL);
}

ONCE_API once_status once_code_record_access_token_async(once_store *s, const void *family_id,
                                                         size_t flen, const void *jti,
                                                         size_t jlen, int64_t expires_at,
                                                         once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->access_record(s, family_id, flen, jti, jlen, expires_at, ticket);
}

ONCE_API once_status once_code_revoke_family_access_tokens(once_store *s, const void *family_id,
                                                           size_t flen)
{
	return s == NULL ? ONCE_INVALID : engine(s)->access_revoke(s, family_id, flen, NULL);
}

ONCE_API once_status once_code_revoke_family_access_tokens_async(once_store *s,
                                                                 const void *family_id,
                                                                 size_t flen, once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->access_revoke(s, family_id, flen, ticket);
}

ONCE_API bool once_access_token_revoked(once_store *s, const void *jti, size_t jlen)
{
	return s != NULL && engine(s)->access_revoked(s, jti, jlen);
}

/* ---- refresh tokens ---- */

ONCE_API once_status once_refresh_insert(once_store *s, const void *hash, size_t hlen,
                                         const once_refresh *r)
{
	return s == NULL ? ONCE_INVALID : engine(s)->refresh_insert(s, hash, hlen, r, NULL);
}

ONCE_API once_status once_refresh_insert_async(once_store *s, const void *hash, size_t hlen,
                                               const once_refresh *r, once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->refresh_insert(s, hash, hlen, r, ticket);
}

ONCE_API once_status once_refresh_get(once_store *s, const void *hash, size_t hlen,
                                      once_refresh **out)
{
	return s == NULL ? ONCE_INVALID : engine(s)->refresh_get(s, hash, hlen, out);
}

ONCE_API once_status once_refresh_consume(once_store *s, const void *hash, size_t hlen,
                                          once_refresh **out)
{
	return s == NULL ? ONCE_INVALID : engine(s)->refresh_consume(s, hash, hlen, out, NULL);
}

ONCE_API once_status once_refresh_consume_async(once_store *s, const void *hash, size_t hlen,
                                                once_refresh **out, once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->refresh_consume(s, hash, hlen, out, ticket);
}

ONCE_API once_status once_refresh_remember_successor(once_store *s, const void *hash,
                                                     size_t hlen, const void *succ, size_t n)
{
	return s == NULL ? ONCE_INVALID : engine(s)->refresh_remember(s, hash, hlen, succ, n, NULL);
}

ONCE_API once_status once_refresh_remember_successor_async(once_store *s, const void *hash,
                                                           size_t hlen, const void *succ,
                                                           size_t n, once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->refresh_remember(s, hash, hlen, succ, n, ticket);
}

ONCE_API once_status once_refresh_rotate(once_store *s, const void *parent, size_t plen,
                                         const void *child, size_t clen, const once_refresh *succ,
                                         const void *payload, size_t n, once_refresh **parent_out)
{
	if (s == NULL)
		return ONCE_INVALID;
	return engine(s)->refresh_rotate(s, parent, plen, child, clen, succ, payload, n, parent_out,
	                                 NULL);
}

ONCE_API once_status once_refresh_rotate_async(once_store *s, const void *parent, size_t plen,
                                               const void *child, size_t clen,
                                               const once_refresh *succ, const void *payload,
                                               size_t n, once_refresh **parent_out,
                                               once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->refresh_rotate(s, parent, plen, child, clen, succ, payload, n, parent_out,
	                                 ticket);
}

ONCE_API once_status once_refresh_revoke_family(once_store *s, const void *family_id, size_t flen)
{
	return s == NULL ? ONCE_INVALID : engine(s)->refresh_revoke(s, family_id, flen, NULL);
}

ONCE_API once_status once_refresh_revoke_family_async(once_store *s, const void *family_id,
                                                      size_t flen, once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->refresh_revoke(s, family_id, flen, ticket);
}

/* ---- DPoP nonces and the replay cache ---- */

ONCE_API once_status once_nonce_issue(once_store *s, int64_t ttl_seconds,
                                      char out[ONCE_NONCE_LEN + 1])
{
	return s == NULL ? ONCE_INVALID : engine(s)->nonce_issue(s, ttl_seconds, out, NULL);
}

ONCE_API once_status once_nonce_issue_async(once_store *s, int64_t ttl_seconds,
                                            char out[ONCE_NONCE_LEN + 1], once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->nonce_issue(s, ttl_seconds, out, ticket);
}

ONCE_API bool once_nonce_valid(once_store *s, const void *nonce, size_t len)
{
	return s != NULL && engine(s)->nonce_valid(s, nonce, len);
}

ONCE_API once_status once_nonce_accept(once_store *s, const void *nonce, size_t len,
                                       int64_t ttl_seconds)
{
	return s == NULL ? ONCE_INVALID : engine(s)->nonce_accept(s, nonce, len, ttl_seconds, NULL);
}

ONCE_API once_status once_nonce_accept_async(once_store *s, const void *nonce, size_t len,
                                             int64_t ttl_seconds, once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->nonce_accept(s, nonce, len, ttl_seconds, ticket);
}

ONCE_API once_status once_replay_check(once_store *s, const void *jti, size_t len,
                                       int64_t ttl_seconds)
{
	return s == NULL ? ONCE_INVALID : engine(s)->replay_check(s, jti, len, ttl_seconds, NULL);
}

ONCE_API once_status once_replay_check_async(once_store *s, const void *jti, size_t len,
                                             int64_t ttl_seconds, once_ticket *ticket)
{
	if (!ticket_start(s, ticket))
		return ONCE_INVALID;
	return engine(s)->replay_check(s, jti, len, ttl_seconds, ticket);
}

/* ---- tickets ---- */

ONCE_API int once_ticket_fd(once_store *s)
{
	if (s == NULL) {
		errno = EINVAL;
		return -1;
	}
	return engine(s)->ticket_fd(s);
}

ONCE_API once_status once_tickets_durable(once_store *s, once_ticket *upto)
{
	if (s == NULL || upto == NULL)
		return ONCE_INVALID;
	return engine(s)->tickets_durable(s, upto);
}

ONCE_API once_status once_tickets_drain(once_store *s, int fd, once_ticket *upto)
{
	if (s == NULL || upto == NULL)
		return ONCE_INVALID;
	return engine(s)->tickets_drain(s, fd, upto);
}

ONCE_API once_status once_ticket_wait(once_store *s, once_ticket t)
{
	return s == NULL ? ONCE_INVALID : engine(s)->ticket_wait(s, t);
}
