// The PKCS#11 (Cryptoki) v2.40 types and constants, as p11-kit ships them (libp11-kit-dev).
// Nothing is linked: a token's module is loaded at run time with dlopen, and every call goes
// through the function list its C_GetFunctionList returns.
#include <p11-kit-1/p11-kit/pkcs11.h>
#include <dlfcn.h>

/// C_GetFunctionList, as a function pointer type Swift can call.
typedef CK_RV (*kmsfs_get_function_list)(CK_FUNCTION_LIST_PTR_PTR);
