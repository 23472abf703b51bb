/*
 * TLS handshake load for Benchmarks/run.sh (the `handshake` case): a closed-loop client that
 * makes a new TLS connection with a full handshake for every request, single-threaded on epoll
 * with non-blocking OpenSSL.
 *
 *   tls_handshakes PORT PATH CONNECTIONS SECONDS
 *       keeps CONNECTIONS connections to 127.0.0.1:PORT in flight for SECONDS. Each is a new TCP
 *       connection, a full TLS handshake (SNI "localhost", no session offered: the client never
 *       resumes; the certificate is not verified, as with wrk and h2load), one
 *       "GET PATH HTTP/1.1" with "Connection: close", the whole answer read (a 200 is required),
 *       and the server's close answered with close_notify; then the next connection. After
 *       SECONDS no new connection starts and the ones in flight finish. Prints
 *       "handshakes N seconds S p99_ms P resumed R protocol V group G cipher C"
 *       (N connections completed, P: the 99th percentile of connect-to-close times, R: handshakes
 *       the server resumed, always 0; V, G, C: what the first connection negotiated).
 *       Exits 1 on any failure: a refused or failed connect, a failed handshake, an answer other
 *       than 200, a connection still open 10 s after it started.
 *
 * wrk and h2load are not used here: both resume the TLS session on their next connection
 * (an abbreviated handshake: no certificate, no signature).
 *
 * Build: cc -O2 -o tls_handshakes tls_handshakes.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECTION_TIMEOUT 10.0

enum state { HANDSHAKE, WRITING, READING };

struct connection {
    int fd; /* -1: not in flight */
    SSL *ssl;
    enum state state;
    double started;
    size_t request_sent;
    size_t received;      /* answer bytes read */
    char answer[4096];    /* its first bytes */
};

static SSL_CTX *context;
static int epoll_fd;
static struct sockaddr_in address;
static char request[1024];
static size_t request_len;
static long completed, resumed;
static double *times;
static size_t times_cap;
static char negotiated[160];

static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "tls_handshakes: ");
    vfprintf(stderr, format, args);
    fprintf(stderr, "\n");
    va_end(args);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void watch(struct connection *c, unsigned events, int op) {
    struct epoll_event event = {.events = events, .data.ptr = c};
    if (epoll_ctl(epoll_fd, op, c->fd, &event) < 0) fail("epoll_ctl: %s", strerror(errno));
}

static void start(struct connection *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) fail("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&address, sizeof address) < 0 && errno != EINPROGRESS) {
        if (errno == EADDRNOTAVAIL)
            fail("connect: %s (no free local port: connections in TIME_WAIT; see net.ipv4.tcp_tw_reuse "
                 "and net.ipv4.ip_local_port_range) after %ld connections",
                 strerror(errno), completed);
        fail("connect: %s", strerror(errno));
    }
    c->ssl = SSL_new(context);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_set_tlsext_host_name(c->ssl, "localhost") != 1)
        fail("SSL_new");
    SSL_set_connect_state(c->ssl);
    c->state = HANDSHAKE;
    c->started = now_seconds();
    c->request_sent = 0;
    c->received = 0;
    /* writable once the TCP connect is done; the handshake then says what it waits for */
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

/* The server closed the connection: check the answer, count it, close our side. */
static void finish(struct connection *c) {
    size_t kept = c->received < sizeof c->answer ? c->received : sizeof c->answer;
    char *end = memmem(c->answer, kept, "\r\n\r\n", 4);
    if (end == NULL || kept < 12 || strncmp(c->answer, "HTTP/1.1 200", 12) != 0)
        fail("connection %ld: no 200 before the close, got %zu bytes: %.*s", completed + 1, c->received,
             (int)(kept < 200 ? kept : 200), c->answer);
    *end = '\0';
    size_t head_len = (size_t)(end + 4 - c->answer);
    for (char *line = strstr(c->answer, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0) {
            long long length = strtoll(line + 17, NULL, 10);
            if ((long long)(c->received - head_len) != length)
                fail("connection %ld: a body of %zu bytes, Content-Length %lld", completed + 1,
                     c->received - head_len, length);
        }
    }
    if (times_cap <= (size_t)completed) {
        times_cap = times_cap ? times_cap * 2 : 65536;
        times = realloc(times, times_cap * sizeof *times);
        if (times == NULL) fail("out of memory");
    }
    times[completed++] = now_seconds() - c->started;
    SSL_shutdown(c->ssl); /* our close_notify in answer to the server's (non-blocking: best effort) */
    SSL_free(c->ssl);
    close(c->fd); /* also takes it out of the epoll set */
    c->ssl = NULL;
    c->fd = -1;
}

static const char *state_name(enum state state) {
    return state == HANDSHAKE ? "handshake" : state == WRITING ? "sending the request" : "reading the answer";
}

/* Drive one connection as far as it goes without blocking. Returns 1 when it is finished. */
static int step(struct connection *c) {
    static char buffer[16384];
    for (;;) {
        int r;
        errno = 0; /* so that a plain EOF below is told from a socket error */
        if (c->state == HANDSHAKE) {
            r = SSL_connect(c->ssl);
            if (r == 1) {
                if (SSL_session_reused(c->ssl)) resumed++;
                if (negotiated[0] == '\0') {
                    const char *group = "unknown";
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
                    int nid = SSL_get_negotiated_group(c->ssl);
                    if (nid != 0 && OBJ_nid2sn(nid) != NULL) group = OBJ_nid2sn(nid);
#endif
                    snprintf(negotiated, sizeof negotiated, "protocol %s group %s cipher %s", SSL_get_version(c->ssl),
                             group, SSL_get_cipher_name(c->ssl));
                }
                c->state = WRITING;
                continue;
            }
        } else if (c->state == WRITING) {
            r = SSL_write(c->ssl, request + c->request_sent, (int)(request_len - c->request_sent));
            if (r > 0) {
                c->request_sent += (size_t)r;
                if (c->request_sent == request_len) c->state = READING;
                continue;
            }
        } else {
            r = SSL_read(c->ssl, buffer, sizeof buffer);
            if (r > 0) {
                if (c->received < sizeof c->answer) {
                    size_t room = sizeof c->answer - c->received;
                    memcpy(c->answer + c->received, buffer, (size_t)r < room ? (size_t)r : room);
                }
                c->received += (size_t)r;
                continue;
            }
        }
        int error = SSL_get_error(c->ssl, r);
        if (error == SSL_ERROR_WANT_READ) {
            watch(c, EPOLLIN, EPOLL_CTL_MOD);
            return 0;
        }
        if (error == SSL_ERROR_WANT_WRITE) {
            watch(c, EPOLLOUT, EPOLL_CTL_MOD);
            return 0;
        }
        /* close_notify, or a plain EOF (SSL_OP_IGNORE_UNEXPECTED_EOF), once the request is sent */
        if (c->state == READING && (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && errno == 0))) {
            finish(c);
            return 1;
        }
        int saved = errno;
        fail("connection %ld: %s failed (SSL error %d%s%s)", completed + 1, state_name(c->state), error,
             error == SSL_ERROR_SYSCALL && saved ? ": " : "", error == SSL_ERROR_SYSCALL && saved ? strerror(saved) : "");
    }
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int load(int port, const char *path, int connections, double seconds) {
    context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) fail("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    /* no client-side session cache: nothing to offer, so every handshake is a full one */
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    int len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
                       path, port);
    if (len <= 0 || (size_t)len >= sizeof request) fail("request path too long");
    request_len = (size_t)len;
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    epoll_fd = epoll_create1(0);

    struct connection *all = calloc((size_t)connections, sizeof *all);
    if (all == NULL) fail("out of memory");
    double started = now_seconds(), deadline = started + seconds;
    int in_flight = 0;
    for (int i = 0; i < connections; i++) {
        start(&all[i]);
        in_flight++;
    }
    struct epoll_event events[512];
    while (in_flight > 0) {
        int count = epoll_wait(epoll_fd, events, 512, 100);
        if (count < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
        double now = now_seconds();
        for (int i = 0; i < count; i++) {
            struct connection *c = events[i].data.ptr;
            if (c->fd < 0) continue;
            if (step(c)) {
                if (now < deadline)
                    start(c);
                else
                    in_flight--;
            }
        }
        for (int i = 0; i < connections; i++) {
            if (all[i].fd >= 0 && now - all[i].started > CONNECTION_TIMEOUT)
                fail("a connection is still open %.0f s after it started (%s)", CONNECTION_TIMEOUT,
                     state_name(all[i].state));
        }
    }
    double elapsed = now_seconds() - started;
    if (completed == 0) fail("no connection completed");
    qsort(times, (size_t)completed, sizeof *times, compare);
    size_t index = (size_t)((double)completed * 0.99);
    if (index >= (size_t)completed) index = (size_t)completed - 1;
    printf("handshakes %ld seconds %.3f p99_ms %.3f resumed %ld %s\n", completed, elapsed, times[index] * 1000,
           resumed, negotiated);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && atoi(argv[3]) > 0 && atof(argv[4]) > 0)
        return load(atoi(argv[1]), argv[2], atoi(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: tls_handshakes PORT PATH CONNECTIONS SECONDS\n");
    return 2;
}
