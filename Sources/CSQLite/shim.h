#ifndef SWAPGATE_CSQLITE_SHIM_H
#define SWAPGATE_CSQLITE_SHIM_H
/* The system SQLite (Debian's libsqlite3), seen only by Sources/SQLiteLink. */
#include <sqlite3.h>
#endif
