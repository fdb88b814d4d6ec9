#ifndef SWAPGATE_CSQLITE_SHIM_H
#define SWAPGATE_CSQLITE_SHIM_H
/* The system SQLite (Debian's libsqlite3), seen only by Sources/SQLiteLink. */
#include <sqlite3.h>

/* sqlite3_db_config is variadic, so Swift cannot call it. This typed form covers the options that take
   (int value, int *out): SQLITE_DBCONFIG_DQS_DML, SQLITE_DBCONFIG_DQS_DDL, SQLITE_DBCONFIG_ENABLE_FKEY, …
   `out` may be NULL; it receives the setting in force after the call. */
static inline int csqlite_db_config_int(sqlite3 *db, int op, int value, int *out) {
    return sqlite3_db_config(db, op, value, out);
}
#endif
