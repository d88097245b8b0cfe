// libpq, PostgreSQL's C client library. Only the store module's PostgreSQL connection imports it.
#ifndef KMSFS_CLIBPQ_SHIM_H
#define KMSFS_CLIBPQ_SHIM_H

#include <libpq-fe.h>

#endif
