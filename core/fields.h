/*
 * core/fields.h - the pointer fields of each record kind, listed once.
 *
 * Packing, sizing and copying (record.c) and the log's encoding of records
 * (wal/codec.c) are all generated from these lists, so a field cannot be
 * packed but forgotten when a copy moves its pointers, or stored in memory
 * but forgotten in the log.
 *   TEXT(f):  const char *f, NUL-terminated
 *   LIST(f):  const char *const *f with size_t f##_count
 *   BYTES(f): const void *f with size_t f##_len
 * Scalar fields are listed in SCALARS lists: int64_t fields.
 */
#ifndef ONCE_CORE_FIELDS_H
#define ONCE_CORE_FIELDS_H

#define CODE_FIELDS(TEXT, LIST, BYTES)                                                             \
	LIST(scope) LIST(resource) BYTES(claims) TEXT(client_id) TEXT(subject) TEXT(redirect_uri)  \
	TEXT(code_challenge) TEXT(code_challenge_method) TEXT(dpop_jkt) TEXT(x5t_s256)           \
	TEXT(nonce) TEXT(family_id)

/* The successor is not here: it is sealed apart and added by the copy. */
#define REFRESH_FIELDS(TEXT, LIST, BYTES)                                                          \
	LIST(scope) LIST(resource) BYTES(claims) TEXT(family_id) TEXT(subject) TEXT(client_id)     \
	TEXT(acr) TEXT(dpop_jkt) TEXT(x5t_s256) TEXT(parent_hash)

/* The int64_t fields the store keeps (consumption is kept apart). */
#define CODE_SCALARS(I64) I64(expires_at) I64(inserted_at)
#define REFRESH_SCALARS(I64) I64(expires_at) I64(generation) I64(auth_time) I64(inserted_at)

#endif /* ONCE_CORE_FIELDS_H */
