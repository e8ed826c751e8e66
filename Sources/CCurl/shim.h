#ifndef MODELKEEP_CCURL_SHIM_H
#define MODELKEEP_CCURL_SHIM_H
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call; these
// fixed-argument wrappers can, one per argument type the object-store client passes.
typedef size_t (*modelkeep_curl_data_fn)(char *, size_t, size_t, void *);

static inline CURLcode modelkeep_curl_set_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode modelkeep_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode modelkeep_curl_set_pointer(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode modelkeep_curl_set_function(CURL *handle, CURLoption option, modelkeep_curl_data_fn value) {
    return curl_easy_setopt(handle, option, value);
}
typedef int (*modelkeep_curl_seek_fn)(void *, curl_off_t, int);
static inline CURLcode modelkeep_curl_set_seek(CURL *handle, modelkeep_curl_seek_fn value) {
    return curl_easy_setopt(handle, CURLOPT_SEEKFUNCTION, value);
}
static inline long modelkeep_curl_response_code(CURL *handle) {
    long code = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &code);
    return code;
}
// Constants libcurl defines as macro expressions, which Swift does not import:
static const size_t modelkeep_curl_readfunc_abort = CURL_READFUNC_ABORT;
static const long modelkeep_curl_global_default = CURL_GLOBAL_DEFAULT;
static const int modelkeep_curl_seekfunc_ok = CURL_SEEKFUNC_OK;
static const int modelkeep_curl_seekfunc_cantseek = CURL_SEEKFUNC_CANTSEEK;
#endif
