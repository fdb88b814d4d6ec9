#ifndef SWAPGATE_CCURL_SHIM_H
#define SWAPGATE_CCURL_SHIM_H
/* libcurl (Debian's libcurl4 on OpenSSL), seen only by Sources/OdooLink's HTTP file.
 * curl_easy_setopt/getinfo and curl_multi_setopt are variadic: Swift cannot call them, so typed wrappers follow. */
#include <curl/curl.h>
static inline CURLcode ccurl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_write(CURL *h, CURLoption o, size_t (*f)(char *, size_t, size_t, void *)) { return curl_easy_setopt(h, o, f); }
static inline CURLcode ccurl_setopt_xferinfo(CURL *h, int (*f)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t)) { return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f); }
/* A curl_blob option (CURLOPT_CAINFO_BLOB …): libcurl copies the struct; with CURL_BLOB_NOCOPY the bytes must outlive
 * the handle, with CURL_BLOB_COPY libcurl copies them too. */
static inline CURLcode ccurl_setopt_blob(CURL *h, CURLoption o, void *data, size_t len, unsigned int flags) {
    struct curl_blob blob = { data, len, flags };
    return curl_easy_setopt(h, o, &blob);
}
static inline CURLcode ccurl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode ccurl_getinfo_string(CURL *h, CURLINFO i, char **v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode ccurl_getinfo_off_t(CURL *h, CURLINFO i, curl_off_t *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLMcode ccurl_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }
/* The CURLcode of a CURLMSG_DONE message (a union member Swift reads awkwardly). */
static inline CURLcode ccurl_msg_result(const CURLMsg *m) { return m->data.result; }
#endif
