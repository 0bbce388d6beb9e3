/*
 * wal/codec.h - the payload of each log record type, and its decoding.
 *
 * One record per state change (SPEC section 3).  A snapshot is written in
 * the same records (wal/snapshot.c): an entry's image is the records that
 * would have created it (a taken code is CODE_PUT + CODE_TAKE), plus
 * family images, so recovery has exactly one decoder and one apply
 * (core/restore.c) for both.
 *
 * All integers little-endian.  Fields, in order:
 *   key      u16 length + bytes
 *   i64/u64  8 bytes;  u8 1 byte
 *   text     u32 n: 0 = NULL, else n-1 bytes then a NUL (no NUL inside)
 *   list     u32 count, then count texts (none NULL)
 *   bytes    u32 n + n bytes (n = 0: absent)
 * Records (the code and refresh fields follow core/fields.h's lists):
 *   CODE_PUT            key, expires_at, inserted_at, code fields
 *   CODE_TAKE           key, consumed_at
 *   CODE_FINALIZE       key
 *   ACCESS_RECORD       key (jti), bytes family id, u64 family incarnation,
 *                       expires_at
 *   ACCESS_REVOKE,
 *   REFRESH_REVOKE,
 *   ACCESS_FAMILY,
 *   REFRESH_FAMILY      key (family id), u64 incarnation, expires_at,
 *                       u8 revoked (1 for the two revocations)
 *   REFRESH_INSERT      key, u64 family incarnation, expires_at, generation,
 *                       auth_time, inserted_at, refresh fields
 *   REFRESH_CONSUME     key, consumed_at
 *   REFRESH_SUCCESSOR   key, bytes sealed successor (24-byte nonce and
 *                       XChaCha20-Poly1305 ciphertext: never the plaintext)
 *   REFRESH_ROTATE      parent key, consumed_at, bytes sealed successor,
 *                       then the child as in REFRESH_INSERT
 *   NONCE_ISSUE         key, issued_at, expires_at
 *   NONCE_ACCEPT        key
 *   REPLAY_RECORD       key, expires_at
 *   SNAPSHOT_END        u64 records before it (snapshot files only)
 * A payload that does not parse exactly (a length past its end, bytes
 * left over, a text without its NUL) is corruption, like a bad checksum;
 * so is a value that recovery could not apply: an empty key, a family
 * incarnation of 0 or at least ONCE_WAL_NUMBER_MAX, a refresh token's
 * family id empty or longer than a key.  The decoder is the one check
 * that `oncestore verify` (which only decodes) and once_open (which
 * applies too) share, so whatever apply refuses must be refused here.
 */
#ifndef ONCE_WAL_CODEC_H
#define ONCE_WAL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oncestore.h"

struct once__entry;
struct once__consumption;

/* A growing payload buffer; small payloads never touch the heap. */
struct once__buf {
	unsigned char *p;
	size_t len, cap;
	bool oom;
	unsigned char small[512];
};

void once__buf_init(struct once__buf *b);
void once__buf_free(struct once__buf *b);

void once__enc_code_put(struct once__buf *b, const struct once__entry *e);
/* CODE_TAKE, REFRESH_CONSUME (with a time); CODE_FINALIZE, NONCE_ACCEPT
 * (with_at false). */
void once__enc_key(struct once__buf *b, const struct once__entry *e, bool with_at, int64_t at);
void once__enc_family(struct once__buf *b, const struct once__entry *family);
void once__enc_access(struct once__buf *b, const struct once__entry *e);
void once__enc_refresh_insert(struct once__buf *b, const struct once__entry *e);
void once__enc_successor(struct once__buf *b, const struct once__entry *e,
                         const struct once__consumption *c);
void once__enc_rotate(struct once__buf *b, const struct once__entry *parent,
                      const struct once__consumption *c, const struct once__entry *child);
void once__enc_nonce(struct once__buf *b, const struct once__entry *e);
void once__enc_replay(struct once__buf *b, const struct once__entry *e);
void once__enc_u64(struct once__buf *b, uint64_t v);

/* A decoded record.  Pointers point into the payload (and `scratch`). */
struct once__wal_op {
	uint8_t type;
	const unsigned char *key;
	size_t key_len;
	int64_t at;          /* consumed_at (take, consume, rotate), issued_at (nonce) */
	int64_t expires_at;  /* families, access tokens, nonces, replays */
	uint64_t incarnation; /* of the family (refresh token, access token, family) */
	bool revoked;         /* family images */
	const unsigned char *family; /* access token: its family id */
	size_t family_len;
	const unsigned char *sealed; /* successor: nonce || ciphertext; NULL: none */
	size_t sealed_len;
	const unsigned char *child; /* rotation: the child's key */
	size_t child_len;
	uint64_t count;      /* SNAPSHOT_END */
	once_code code;      /* CODE_PUT */
	once_refresh refresh; /* REFRESH_INSERT, REFRESH_ROTATE's child */
};

/* Room for the decoded lists' pointer arrays, reused across records. */
struct once__scratch {
	const char **slots;
	size_t cap, used;
};

/* Decodes a payload of `type`; false when it does not parse exactly. */
bool once__wal_decode(uint8_t type, const unsigned char *p, size_t len, struct once__wal_op *op,
                      struct once__scratch *scratch);
void once__scratch_free(struct once__scratch *sc);

#endif /* ONCE_WAL_CODEC_H */
