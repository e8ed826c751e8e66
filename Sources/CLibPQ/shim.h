#ifndef MODELKEEP_CLIBPQ_SHIM_H
#define MODELKEEP_CLIBPQ_SHIM_H
// PostgreSQL's client library (Debian's libpq-dev); pkg-config's libpq adds its include directory.
#include <libpq-fe.h>
#endif
