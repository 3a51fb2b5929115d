/*
 * CCurl shim: typed, non-variadic wrappers for the libcurl calls Swift cannot import.
 * Each wrapper is one line; argument types are exactly what libcurl expects for the option.
 */
#ifndef ESGATE_CCURL_SHIM_H
#define ESGATE_CCURL_SHIM_H

#include <curl/curl.h>

/* Size of the buffer handed to CURLOPT_ERRORBUFFER (CURL_ERROR_SIZE is a macro). */
static const size_t esg_curl_error_size = CURL_ERROR_SIZE;

/* curl_global_init(CURL_GLOBAL_DEFAULT); call once per process before any other curl call. */
static inline CURLcode esg_curl_global_init(void) { return curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Options taking a long (booleans, timeouts in ms, enums such as CURL_SSLVERSION_*). */
static inline CURLcode esg_curl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }

/* Options taking a curl_off_t (CURLOPT_POSTFIELDSIZE_LARGE). */
static inline CURLcode esg_curl_setopt_off_t(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }

/* Options taking a C string (curl copies strings, except CURLOPT_POSTFIELDS). */
static inline CURLcode esg_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }

/* Options taking an untyped pointer (CURLOPT_WRITEDATA, HEADERDATA, XFERINFODATA, ERRORBUFFER, POSTFIELDS). */
static inline CURLcode esg_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }

/* CURLOPT_HTTPHEADER: the list must stay alive until the transfer is done. */
static inline CURLcode esg_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }

/* CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION share this signature. */
static inline CURLcode esg_curl_setopt_write_function(CURL *h, CURLoption o, curl_write_callback f) { return curl_easy_setopt(h, o, f); }

/* CURLOPT_XFERINFOFUNCTION (progress; used for cancellation). */
static inline CURLcode esg_curl_setopt_xferinfo_function(CURL *h, curl_xferinfo_callback f) { return curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, f); }

/* CURLINFO_* values of type long (CURLINFO_RESPONSE_CODE, CURLINFO_OS_ERRNO). */
static inline CURLcode esg_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }

#endif
