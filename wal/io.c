/*
 * wal/io.c - the system-call table of wal/io.h, filled with the real calls.
 */
#include <unistd.h>

#include "io.h"

struct once__io once__io = {.pwrite = pwrite, .fdatasync = fdatasync};

void once__io_reset(void)
{
	once__io.pwrite = pwrite;
	once__io.fdatasync = fdatasync;
}
