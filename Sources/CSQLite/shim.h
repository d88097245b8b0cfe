// SQLite 3 for Swift. Only the key store's SQLite layer imports this module.
#ifndef KMSFS_CSQLITE_SHIM_H
#define KMSFS_CSQLITE_SHIM_H

#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro over a cast function pointer that Swift cannot import.
static inline sqlite3_destructor_type CSQLite_transient(void) { return SQLITE_TRANSIENT; }

/// Defensive mode (sqlite3_db_config is variadic): the schema cannot be corrupted through
/// ordinary SQL, and functions in a planted schema do not run with the application's trust.
static inline int CSQLite_defensive(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
}

#endif
