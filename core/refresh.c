/*
 * core/refresh.c - refresh-token families.
 *
 * Not built yet: every call refuses with ONCE_INVALID, stores nothing and
 * logs why, as the public header documents.  The refresh-family issue
 * replaces this file.
 */
#include "internal.h"

static once_status not_built(once_store *s, once_op op)
{
	if (s == NULL)
		return ONCE_INVALID;
	once__log(s, ONCE_LOG_WARN, "%s: refresh tokens are not available in this version",
	          once_op_name(op));
	return once__count(s, op, ONCE_INVALID);
}

ONCE_API once_status once_refresh_insert(once_store *s, const void *hash, size_t hlen,
                                         const once_refresh *r)
{
	(void)hash, (void)hlen, (void)r;
	return not_built(s, ONCE_OP_REFRESH_INSERT);
}

ONCE_API once_status once_refresh_get(once_store *s, const void *hash, size_t hlen, once_refresh **out)
{
	(void)hash, (void)hlen, (void)out;
	return not_built(s, ONCE_OP_REFRESH_GET);
}

ONCE_API once_status once_refresh_consume(once_store *s, const void *hash, size_t hlen,
                                          once_refresh **out)
{
	(void)hash, (void)hlen, (void)out;
	return not_built(s, ONCE_OP_REFRESH_CONSUME);
}

ONCE_API once_status once_refresh_remember_successor(once_store *s, const void *hash, size_t hlen,
                                                     const void *succ, size_t n)
{
	(void)hash, (void)hlen, (void)succ, (void)n;
	return not_built(s, ONCE_OP_REFRESH_SUCCESSOR);
}

ONCE_API once_status once_refresh_rotate(once_store *s, const void *parent, size_t plen,
                                         const void *child, size_t clen, const once_refresh *succ,
                                         const void *payload, size_t n, once_refresh **parent_out)
{
	(void)parent, (void)plen, (void)child, (void)clen, (void)succ, (void)payload, (void)n,
		(void)parent_out;
	return not_built(s, ONCE_OP_REFRESH_ROTATE);
}

ONCE_API once_status once_refresh_revoke_family(once_store *s, const void *family_id, size_t flen)
{
	(void)family_id, (void)flen;
	return not_built(s, ONCE_OP_REFRESH_REVOKE);
}
