/*
 * CGnuTLS shim: what the embedded HTTPS server needs on libmicrohttpd's per-connection GnuTLS session
 * (passed as void * to keep gnutls types out of Swift signatures): require + verify the client certificate
 * during the handshake, and read the verified peer's CN afterwards. The access handler re-verifies before
 * reading the CN, so a connection whose handshake check did not run still never reaches the handler.
 */
#ifndef ESGATE_CGNUTLS_SHIM_H
#define ESGATE_CGNUTLS_SHIM_H

#include <stddef.h>
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/*
 * After a fatal alert: read and discard what the client still sends until it closes (at most 1 s) before
 * libmicrohttpd closes the socket. Closing with unread data (under TLS 1.3 the client sends its request right
 * after its Finished) makes the kernel send a RST, and the client then often loses the alert and reports
 * "empty reply" or "send failure" instead of the certificate problem. Runs on the connection's own thread.
 * libmicrohttpd hands the socket to GnuTLS with gnutls_transport_set_int2, so get_int returns its fd.
 */
static inline void esg_gnutls_drain_until_peer_closes(gnutls_session_t s)
{
    int fd = gnutls_transport_get_int(s), type = 0;
    socklen_t len = sizeof(type);
    struct timespec start, now;
    char buf[4096];

    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long elapsed_ms, remaining_ms;
        struct pollfd p;
        ssize_t n;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed_ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        remaining_ms = 1000 - elapsed_ms;
        if (remaining_ms <= 0) return;
        p.fd = fd; p.events = POLLIN; p.revents = 0;
        r = poll(&p, 1, (int)remaining_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0) return;   /* the client closed: our close will not reset it */
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return;
    }
}

/*
 * Handshake-time check of the client certificate (installed by the function below). GnuTLS calls it after
 * it received the client's Certificate (+ CertificateVerify), also when that message was empty.
 * On failure it sends a fatal alert itself, because libmicrohttpd closes a failed handshake without one
 * and the client would only see an empty reply: certificate_required (TLS 1.3) / handshake_failure (TLS 1.2)
 * when no certificate came, certificate_expired, unknown_ca or bad_certificate otherwise.
 * Returns 0 to continue the handshake, -1 to abort it.
 */
static int esg_gnutls_verify_client_certificate(gnutls_session_t s)
{
    unsigned int status = 0, count = 0;
    gnutls_alert_description_t alert;

    if (gnutls_certificate_get_peers(s, &count) == NULL || count == 0)
        alert = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3 ? GNUTLS_A_CERTIFICATE_REQUIRED : GNUTLS_A_HANDSHAKE_FAILURE;
    else if (gnutls_certificate_verify_peers3(s, NULL, &status) < 0)
        alert = GNUTLS_A_BAD_CERTIFICATE;
    else if (status == 0)
        return 0;
    else if (status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED))
        alert = GNUTLS_A_CERTIFICATE_EXPIRED;
    else if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
        alert = GNUTLS_A_UNKNOWN_CA;
    else
        alert = GNUTLS_A_BAD_CERTIFICATE;
    if (gnutls_alert_send(s, GNUTLS_AL_FATAL, alert) == GNUTLS_E_SUCCESS)
        esg_gnutls_drain_until_peer_closes(s);
    return -1;
}

/*
 * Before the handshake (libmicrohttpd's "connection started" notification): request a client certificate
 * and require it to verify against the credentials' trust list (MHD_OPTION_HTTPS_MEM_TRUST) during the
 * handshake. "Request" rather than GNUTLS_CERT_REQUIRE so that a missing certificate reaches the check
 * above and gets its alert. No host name check (client certificates name a district, not a host).
 */
static inline void esg_gnutls_require_verified_client_certificate(void *session)
{
    gnutls_session_t s = (gnutls_session_t)session;
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
    gnutls_session_set_verify_function(s, esg_gnutls_verify_client_certificate);
}

/*
 * After the handshake: verify the peer's certificate chain again and copy the subject's first CN
 * (NUL-terminated) into buf. *size is the capacity on input and the length on output.
 * Returns 0 on success, a negative GnuTLS error code otherwise
 * (GNUTLS_E_NO_CERTIFICATE_FOUND, GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR, GNUTLS_E_SHORT_MEMORY_BUFFER...).
 */
static inline int esg_gnutls_verified_peer_common_name(void *session, char *buf, size_t *size)
{
    gnutls_session_t s = (gnutls_session_t)session;
    unsigned int status = 0, count = 0;
    const gnutls_datum_t *chain;
    gnutls_x509_crt_t crt;
    int rc;

    rc = gnutls_certificate_verify_peers3(s, NULL, &status);
    if (rc < 0) return rc;
    if (status != 0) return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    chain = gnutls_certificate_get_peers(s, &count);
    if (chain == NULL || count == 0) return GNUTLS_E_NO_CERTIFICATE_FOUND;
    rc = gnutls_x509_crt_init(&crt);
    if (rc < 0) return rc;
    rc = gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER);
    if (rc >= 0) rc = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, size);
    gnutls_x509_crt_deinit(crt);
    return rc < 0 ? rc : 0;
}

/*
 * The DER bytes of the peer's (leaf) certificate as the handshake received them, owned by the session; NULL
 * when there is none. A connection's identity cache compares them instead of verifying the chain again.
 */
static inline const unsigned char *esg_gnutls_peer_certificate(void *session, size_t *size)
{
    unsigned int count = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers((gnutls_session_t)session, &count);
    if (chain == NULL || count == 0) { *size = 0; return NULL; }
    *size = chain[0].size;
    return chain[0].data;
}

/* gnutls_strerror for a GnuTLS error code (static string). */
static inline const char *esg_gnutls_strerror(int code) { return gnutls_strerror(code); }

#endif
