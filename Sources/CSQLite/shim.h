#ifndef MODELKEEP_CSQLITE_SHIM_H
#define MODELKEEP_CSQLITE_SHIM_H
#include <sqlite3.h>

// sqlite3_config is variadic, which Swift cannot call; this fixed-argument wrapper can.
// Turns off SQLite's memory statistics, whose global mutex every allocation takes.
static inline int modelkeep_sqlite3_config_no_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
// Extended result codes are macros built from expressions, which Swift does not import.
static const int modelkeep_sqlite_constraint_unique = SQLITE_CONSTRAINT_UNIQUE;
static const int modelkeep_sqlite_constraint_primarykey = SQLITE_CONSTRAINT_PRIMARYKEY;
static const int modelkeep_sqlite_constraint_check = SQLITE_CONSTRAINT_CHECK;
static const int modelkeep_sqlite_constraint_foreignkey = SQLITE_CONSTRAINT_FOREIGNKEY;
#endif
