/*
 * wal/batch.h - recovery's records, applied in an order that follows the
 * tables instead of the log.
 *
 * Replaying records in log order inserts into random buckets of tables
 * sized for their full capacity: every insert then misses the cache (and
 * the TLB) twice, on the bucket and on the chain, and that was most of the
 * recovery time (README "Durability").  So recovery collects the records
 * (pointers into the mapped files, 24 bytes each), sorts them with a stable
 * radix sort by (table, shard, bucket), and applies them in that order,
 * where consecutive inserts touch neighbouring buckets and entries just
 * allocated.
 *
 * Why the order may change: records about one key keep their log order
 * (equal keys sort equal, and the sort is stable), and records about
 * different keys commute in core/restore.c: a family update is a max of
 * incarnation and expiry and an OR of the revoked flag, whoever applies
 * first.  A rotation touches two keys, so it is split into its parent's
 * part and its child's part, each sorted by its own key.
 */
#ifndef ONCE_WAL_BATCH_H
#define ONCE_WAL_BATCH_H

#include <stddef.h>

#include "oncestore.h"

struct once__batch;
struct once__wal_op;
struct once__wal_record;

struct once__batch *once__batch_new(once_store *s);
/* Adds a checked record whose payload decoded into op.  ONCE_OK |
 * ONCE_CORRUPT (a key the store cannot hold) | ONCE_NOMEM. */
once_status once__batch_add(struct once__batch *b, const struct once__wal_record *rec,
                            const struct once__wal_op *op);
/* Keeps a mapped file alive until the batch is freed (records point into
 * it).  ONCE_OK | ONCE_NOMEM (then the caller unmaps it). */
once_status once__batch_keep(struct once__batch *b, const void *map, size_t len);
/* Sorts and applies every record.  ONCE_OK | ONCE_CORRUPT | ONCE_NOMEM. */
/* Grows the store's tables for the records gathered (an upper bound on
 * the entries they create), before they are applied.  Outside any
 * read-side section. */
void once__batch_reserve(struct once__batch *b);
once_status once__batch_apply(struct once__batch *b);
/* Unmaps the kept files and frees the batch. */
void once__batch_free(struct once__batch *b);

#endif /* ONCE_WAL_BATCH_H */
