/*
 * tools/repair_report.c - how `oncestore repair` prints what a fix drops
 * and what it re-asserts (tools/repair.h): record counts by type, the
 * preallocated zeros apart, and with --truncate-only the keys of the
 * dropped spends and revocations with what each means for the operator.
 */
#include <inttypes.h>
#include <stdio.h>

#include "repair.h"

static void print_types(const uint64_t by_type[ONCE_WAL_TYPE_END])
{
	bool first = true;
	for (int t = 0; t < ONCE_WAL_TYPE_END; t++) {
		if (by_type[t] == 0)
			continue;
		char buf[16];
		printf("%s%s %" PRIu64, first ? "" : ", ", cli_type_name((unsigned)t, buf), by_type[t]);
		first = false;
	}
}

void print_records(const struct lost *l)
{
	printf("%" PRIu64 " record%s that still pass%s their checksums", l->records,
	       l->records == 1 ? "" : "s", l->records == 1 ? "es" : "");
	if (l->records == 0)
		return;
	printf(" (");
	print_types(l->by_type);
	printf(")");
}

void print_zeros(const struct lost *l)
{
	if (l->zeros > 0)
		printf("; and %" PRIu64 " bytes preallocated (zeros after them: unused space, nothing lost)",
		       l->zeros);
}

/* What a dropped spend or revocation of this type leaves behind. */
static const char *notable_consequence(uint8_t t)
{
	if (t == ONCE_WAL_REPLAY_RECORD)
		return "this jti is no longer recorded";
	if (t == ONCE_WAL_ACCESS_REVOKE || t == ONCE_WAL_REFRESH_REVOKE || t == ONCE_WAL_ACCESS_FAMILY ||
	    t == ONCE_WAL_REFRESH_FAMILY)
		return "tokens of this family that remain read as live: revoke it again";
	return "if the store still holds this key, it reads as unspent";
}

void print_notable(const struct lost *l)
{
	for (uint64_t i = 0; i < l->notables && i < NOTABLE_MAX; i++) {
		char buf[16];
		uint8_t t = l->notable[i].type;
		printf("    dropped %s of \"%s\": %s\n", cli_type_name(t, buf), l->notable[i].key,
		       notable_consequence(t));
	}
	if (l->notables > NOTABLE_MAX)
		printf("    ... and %" PRIu64 " more spends or revocations\n", l->notables - NOTABLE_MAX);
}

void print_reassert(const struct reassert *ra, uint64_t first_seq)
{
	if (ra->n == 0)
		return;
	printf("  re-assert %zu spend%s and revocation%s found intact after the damage, as new records "
	       "(sequence numbers %" PRIu64 "..%" PRIu64 "): ",
	       ra->n, ra->n == 1 ? "" : "s", ra->n == 1 ? "" : "s", first_seq, first_seq + ra->n - 1);
	print_types(ra->by_type);
	printf("\n");
}
