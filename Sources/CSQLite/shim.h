#pragma once
#include <sqlite3.h>
#include <stdint.h>
#include <unistd.h>

/* Busy handler for connections of one process that take turns writing (ingest, uplink, supervision):
   sqlite3_busy_timeout sleeps up to 100 ms between retries once a wait grows, which turns every hand-over of
   the write lock into a long stall; this one retries every millisecond until the limit (milliseconds, passed
   as the context pointer's integer value). */
static inline int esgate_sqlite_busy_handler(void *limit, int attempts) {
    if ((long)attempts >= (long)(intptr_t)limit) return 0;
    usleep(1000);
    return 1;
}

static inline int esgate_sqlite_set_busy_limit(sqlite3 *db, int milliseconds) {
    return sqlite3_busy_handler(db, esgate_sqlite_busy_handler, (void *)(intptr_t)milliseconds);
}

/* Process-wide memory statistics cost a global mutex on every SQLite allocation (several per inserted row);
   esgate never reads them. Must run before the first connection opens (sqlite3_config refuses later, harmlessly). */
static inline int esgate_sqlite_disable_memory_statistics(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
