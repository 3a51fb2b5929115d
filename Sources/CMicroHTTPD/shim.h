/*
 * CMicroHTTPD shim: typed, non-variadic wrappers for the libmicrohttpd calls Swift cannot import
 * (MHD_start_daemon, MHD_get_daemon_info, MHD_get_connection_info).
 */
#ifndef ESGATE_CMICROHTTPD_SHIM_H
#define ESGATE_CMICROHTTPD_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <microhttpd.h>

/* Daemon flags used by the Swift wrapper (enum values, spelled out so Swift sees plain unsigned ints). */
static const unsigned int esg_mhd_flags_threaded = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION;

/*
 * Error log bridge: libmicrohttpd logs printf-style with a va_list, which Swift cannot format. The trampoline
 * formats into a bounded buffer and hands the text to `fn` with `cls` (both owned by the caller, alive until
 * MHD_stop_daemon returned).
 */
typedef void (*esg_mhd_log_fn)(void *cls, const char *message);
struct esg_mhd_logger { esg_mhd_log_fn fn; void *cls; };

static void esg_mhd_log_trampoline(void *cls, const char *fmt, va_list ap)
{
    const struct esg_mhd_logger *logger = (const struct esg_mhd_logger *)cls;
    char buf[1024];
    if (logger == NULL || logger->fn == NULL) return;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    logger->fn(logger->cls, buf);
}

/*
 * Start a daemon bound to the IPv4 address `host` (dotted quad) and `port` (0: any free port).
 * TLS options are only passed when `https_key` and `https_cert` are non-NULL (MHD refuses HTTPS options
 * on a plain daemon); `https_trust` (PEM CA) additionally makes MHD request client certificates.
 * Returns NULL on failure (bad address, port in use, bad PEM...).
 */
static inline struct MHD_Daemon *esg_mhd_start_daemon(
    unsigned int flags, const char *host, uint16_t port,
    MHD_AccessHandlerCallback handler, void *handler_cls,
    MHD_RequestCompletedCallback completed, void *completed_cls,
    MHD_NotifyConnectionCallback notify, void *notify_cls,
    const struct esg_mhd_logger *logger,
    const char *https_key, const char *https_cert, const char *https_trust, const char *https_priorities,
    unsigned int connection_timeout_seconds, size_t connection_memory_limit)
{
    struct sockaddr_in addr;
    struct MHD_OptionItem ops[16];
    int n = 0;

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return NULL;

    /* The logger goes first, so that MHD reports problems with the following options through it. */
    if (logger != NULL) {
        flags |= MHD_USE_ERROR_LOG;
        ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)&esg_mhd_log_trampoline, (void *)logger };
    }
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &addr };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, completed_cls };
    if (notify != NULL)
        ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify, notify_cls };
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)connection_timeout_seconds, NULL };
    if (connection_memory_limit > 0)
        ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)connection_memory_limit, NULL };
    if (https_key != NULL && https_cert != NULL) {
        flags |= MHD_USE_TLS;
        ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)https_key };
        ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)https_cert };
        if (https_trust != NULL)
            ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0, (void *)https_trust };
        if (https_priorities != NULL)
            ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)https_priorities };
    }
    ops[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

    /* MHD copies the socket address while binding; `addr` may go out of scope afterwards. */
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, handler_cls, MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
}

/* The port the daemon is bound to (resolves port 0), or 0 if unknown. */
static inline uint16_t esg_mhd_bound_port(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return info == NULL ? 0 : info->port;
}

/* The connection's gnutls_session_t (as void *), or NULL on a plain-HTTP connection. */
static inline void *esg_mhd_tls_session(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return info == NULL ? NULL : info->tls_session;
}

/* The connection's socket context (set by the connection notification callback), or NULL. */
static inline void *esg_mhd_socket_context(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info == NULL ? NULL : info->socket_context;
}

#endif
