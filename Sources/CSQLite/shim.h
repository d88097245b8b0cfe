// SQLite 3 for Swift. Only the key store's SQLite layer imports this module.
#ifndef KMSFS_CSQLITE_SHIM_H
#define KMSFS_CSQLITE_SHIM_H

#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro over a cast function pointer that Swift cannot import.
static inline sqlite3_destructor_type CSQLite_transient(void) { return SQLITE_TRANSIENT; }

#endif
