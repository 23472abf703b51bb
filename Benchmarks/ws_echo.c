/*
 * WebSocket echo load for Benchmarks/ws_echo.sh: a backend that echoes every byte after the
 * upgrade, and a closed-loop client (one message in flight per connection), both single-threaded
 * on epoll so the load costs little next to the proxy under test.
 *
 *   ws_echo serve PORT
 *       answers each upgrade with 101, then echoes what it reads (the client's masked frames come
 *       back as they went: the client counts bytes, it does not parse them). The 101 carries a
 *       fixed Sec-WebSocket-Accept: the proxies measured here relay it without checking.
 *   ws_echo load PORT PATH CONNECTIONS SECONDS SIZE [tls]
 *       opens CONNECTIONS WebSockets through 127.0.0.1:PORT (request target PATH), then for
 *       SECONDS keeps one SIZE-byte text message in flight on each; prints
 *       "round_trips N seconds S" (N messages that came back whole).
 *       With "tls" (only in a build with -DWS_ECHO_TLS, below) every connection is TLS: the
 *       handshakes (TLS 1.2 or 1.3, ALPN offering only http/1.1, no SNI, the certificate not
 *       verified) are done one connection at a time, blocking, and each upgrade request is sent
 *       before the socket goes non-blocking into epoll; the rest is as without it. Prints
 *       "round_trips N seconds S protocol V cipher C alpn A" (what the first connection got).
 *
 * Build: cc -O2 -o ws_echo ws_echo.c
 *        cc -O2 -DWS_ECHO_TLS -o ws_echo_tls ws_echo.c -lssl -lcrypto   (adds "load ... tls")
 * The plain build does not use OpenSSL at all; its client loop is the same in both builds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- backend ---------------------------------------------------------------------------- */

struct peer {
    int fd;
    int upgraded;
    size_t head_len;
    char head[8192];
};

static const char RESPONSE[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static int serve(int port) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0) die("bind");
    if (listen(listener, 4096) < 0) die("listen");
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    printf("ready %d\n", port);
    fflush(stdout);
    static char buffer[65536];
    struct epoll_event events[256];
    for (;;) {
        int count = epoll_wait(epoll, events, 256, -1);
        for (int i = 0; i < count; i++) {
            struct peer *peer = events[i].data.ptr;
            if (peer == NULL) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    no_delay(fd);
                    struct peer *created = calloc(1, sizeof *created);
                    created->fd = fd;
                    struct epoll_event add = {.events = EPOLLIN, .data.ptr = created};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &add);
                }
                continue;
            }
            ssize_t n = read(peer->fd, buffer, sizeof buffer);
            if (n <= 0) {
                if (n < 0 && errno == EAGAIN) continue;
                close(peer->fd);
                free(peer);
                continue;
            }
            if (peer->upgraded) {
                /* Small messages: the socket buffer takes them whole. */
                if (write(peer->fd, buffer, (size_t)n) != n) {
                    close(peer->fd);
                    free(peer);
                }
                continue;
            }
            size_t take = (size_t)n < sizeof peer->head - peer->head_len ? (size_t)n : sizeof peer->head - peer->head_len;
            memcpy(peer->head + peer->head_len, buffer, take);
            peer->head_len += take;
            char *end = memmem(peer->head, peer->head_len, "\r\n\r\n", 4);
            if (end == NULL) continue;
            peer->upgraded = 1;
            if (write(peer->fd, RESPONSE, sizeof RESPONSE - 1) < 0) die("write");
            size_t rest = peer->head_len - (size_t)(end + 4 - peer->head);
            if (rest > 0 && write(peer->fd, end + 4, rest) < 0) die("write");
        }
    }
}

/* ---- client ----------------------------------------------------------------------------- */

struct connection {
    int fd;
    int upgraded;
    size_t received; /* bytes of the current echo (or of the 101 head) */
    char head[4096];
};

static int load(int port, const char *path, int connections, double seconds, int size) {
    /* One masked text frame of `size` payload bytes (mask 0: the bytes travel as they are). */
    unsigned char frame[70000];
    size_t frame_len = 0;
    frame[frame_len++] = 0x81;
    if (size < 126) {
        frame[frame_len++] = 0x80 | (unsigned char)size;
    } else {
        frame[frame_len++] = 0x80 | 126;
        frame[frame_len++] = (unsigned char)(size >> 8);
        frame[frame_len++] = (unsigned char)size;
    }
    memset(frame + frame_len, 0, 4);
    frame_len += 4;
    memset(frame + frame_len, 'x', (size_t)size);
    frame_len += (size_t)size;

    char request[1024];
    int request_len = snprintf(request, sizeof request,
                               "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                               path, port);
    int epoll = epoll_create1(0);
    struct connection *all = calloc((size_t)connections, sizeof *all);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < connections; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
        no_delay(fd);
        if (write(fd, request, (size_t)request_len) != request_len) die("write");
        all[i].fd = fd;
        struct epoll_event add = {.events = EPOLLIN, .data.ptr = &all[i]};
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &add);
    }
    static char buffer[65536];
    struct epoll_event events[512];
    long round_trips = 0;
    int upgraded = 0;
    double started = 0, deadline = now_seconds() + 30;
    for (;;) {
        double now = now_seconds();
        if (now > deadline) break;
        int count = epoll_wait(epoll, events, 512, 100);
        for (int i = 0; i < count; i++) {
            struct connection *c = events[i].data.ptr;
            ssize_t n = read(c->fd, buffer, sizeof buffer);
            if (n <= 0) {
                fprintf(stderr, "connection closed by the proxy after %ld round trips\n", round_trips);
                exit(1);
            }
            if (!c->upgraded) {
                size_t take = (size_t)n < sizeof c->head - c->received ? (size_t)n : sizeof c->head - c->received;
                memcpy(c->head + c->received, buffer, take);
                c->received += take;
                char *end = memmem(c->head, c->received, "\r\n\r\n", 4);
                if (end == NULL) continue;
                if (strncmp(c->head, "HTTP/1.1 101", 12) != 0) {
                    fprintf(stderr, "no 101: %.*s\n", (int)c->received, c->head);
                    exit(1);
                }
                c->upgraded = 1;
                c->received = 0;
                if (++upgraded == connections) {
                    /* Every tunnel is open: the measured window starts, each sends its first message. */
                    started = now_seconds();
                    deadline = started + seconds;
                    for (int k = 0; k < connections; k++) {
                        if (write(all[k].fd, frame, frame_len) != (ssize_t)frame_len) die("write");
                    }
                }
                continue;
            }
            c->received += (size_t)n;
            while (c->received >= frame_len) {
                c->received -= frame_len;
                round_trips++;
                if (write(c->fd, frame, frame_len) != (ssize_t)frame_len) die("write");
            }
        }
    }
    if (upgraded < connections) {
        fprintf(stderr, "only %d of %d WebSockets opened\n", upgraded, connections);
        return 1;
    }
    printf("round_trips %ld seconds %.3f\n", round_trips, now_seconds() - started);
    return 0;
}

/* ---- TLS client (ws_echo load ... tls; built with -DWS_ECHO_TLS) ------------------------- */

#ifdef WS_ECHO_TLS
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/time.h>

struct tls_connection {
    int fd;
    SSL *ssl;
    int upgraded;
    size_t received; /* bytes of the current echo (or of the 101 head) */
    char head[4096];
};

static void tls_die(const char *what) {
    fprintf(stderr, "%s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* Waits until fd is ready for `events`, at most 10 s. */
static void wait_for(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    int ready = poll(&p, 1, 10000);
    if (ready < 0) die("poll");
    if (ready == 0) {
        fprintf(stderr, "socket not ready within 10 s\n");
        exit(1);
    }
}

/* Writes all of data on a non-blocking connection: on WANT_WRITE (or WANT_READ) it waits for the
 * socket and retries with the same arguments, as OpenSSL requires; a bounded number of times. */
static void tls_write(struct tls_connection *c, const void *data, int len) {
    for (int attempt = 0; attempt < 100; attempt++) {
        int n = SSL_write(c->ssl, data, len);
        if (n == len) return;
        int error = SSL_get_error(c->ssl, n);
        if (error == SSL_ERROR_WANT_WRITE) {
            wait_for(c->fd, POLLOUT);
        } else if (error == SSL_ERROR_WANT_READ) {
            wait_for(c->fd, POLLIN);
        } else {
            tls_die("SSL_write");
        }
    }
    fprintf(stderr, "SSL_write did not complete after 100 attempts\n");
    exit(1);
}

static int load_tls(int port, const char *path, int connections, double seconds, int size) {
    /* The same frame and upgrade request as load(). */
    unsigned char frame[70000];
    size_t frame_len = 0;
    frame[frame_len++] = 0x81;
    if (size < 126) {
        frame[frame_len++] = 0x80 | (unsigned char)size;
    } else {
        frame[frame_len++] = 0x80 | 126;
        frame[frame_len++] = (unsigned char)(size >> 8);
        frame[frame_len++] = (unsigned char)size;
    }
    memset(frame + frame_len, 0, 4);
    frame_len += 4;
    memset(frame + frame_len, 'x', (size_t)size);
    frame_len += (size_t)size;

    char request[1024];
    int request_len = snprintf(request, sizeof request,
                               "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                               path, port);

    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) tls_die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    /* Only HTTP/1.1 offered, so that no proxy picks h2 for the upgrade. */
    static const unsigned char alpn[] = "\x08http/1.1";
    if (SSL_CTX_set_alpn_protos(context, alpn, sizeof alpn - 1) != 0) tls_die("SSL_CTX_set_alpn_protos");

    int epoll = epoll_create1(0);
    struct tls_connection *all = calloc((size_t)connections, sizeof *all);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char negotiated[256] = "";
    for (int i = 0; i < connections; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        /* Blocking handshake, one connection at a time; bounded by 10 s socket timeouts. */
        struct timeval limit = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
        if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
        no_delay(fd);
        SSL *ssl = SSL_new(context);
        if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) tls_die("SSL_new");
        if (SSL_connect(ssl) != 1) tls_die("TLS handshake (SSL_connect)");
        const unsigned char *selected = NULL;
        unsigned int selected_len = 0;
        SSL_get0_alpn_selected(ssl, &selected, &selected_len);
        if (selected_len > 0 && (selected_len != 8 || memcmp(selected, "http/1.1", 8) != 0)) {
            fprintf(stderr, "the server chose ALPN %.*s, not http/1.1\n", (int)selected_len, selected);
            exit(1);
        }
        if (i == 0) {
            snprintf(negotiated, sizeof negotiated, "protocol %s cipher %s alpn %.*s", SSL_get_version(ssl),
                     SSL_get_cipher_name(ssl), selected_len > 0 ? (int)selected_len : 4,
                     selected_len > 0 ? (const char *)selected : "none");
        }
        if (SSL_write(ssl, request, request_len) != request_len) tls_die("SSL_write (upgrade request)");
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
        all[i].fd = fd;
        all[i].ssl = ssl;
        struct epoll_event add = {.events = EPOLLIN, .data.ptr = &all[i]};
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &add);
    }
    static char buffer[65536];
    struct epoll_event events[512];
    long round_trips = 0;
    int upgraded = 0;
    double started = 0, deadline = now_seconds() + 30;
    for (;;) {
        double now = now_seconds();
        if (now > deadline) break;
        int count = epoll_wait(epoll, events, 512, 100);
        for (int i = 0; i < count; i++) {
            struct tls_connection *c = events[i].data.ptr;
            /* Drain until WANT_READ: a record already inside OpenSSL would not wake epoll again.
             * (Bounded; with a 64 KiB buffer no record is left half-read, and whatever is still
             * in the socket wakes the level-triggered epoll.) */
            for (int reads = 0; reads < 1024; reads++) {
                int n = SSL_read(c->ssl, buffer, sizeof buffer);
                if (n <= 0) {
                    int error = SSL_get_error(c->ssl, n);
                    if (error == SSL_ERROR_WANT_READ) break;
                    if (error == SSL_ERROR_WANT_WRITE) {
                        wait_for(c->fd, POLLOUT);
                        continue;
                    }
                    fprintf(stderr, "connection closed by the proxy after %ld round trips (SSL error %d)\n",
                            round_trips, error);
                    ERR_print_errors_fp(stderr);
                    exit(1);
                }
                if (!c->upgraded) {
                    size_t take = (size_t)n < sizeof c->head - c->received ? (size_t)n : sizeof c->head - c->received;
                    memcpy(c->head + c->received, buffer, take);
                    c->received += take;
                    char *end = memmem(c->head, c->received, "\r\n\r\n", 4);
                    if (end == NULL) continue;
                    if (strncmp(c->head, "HTTP/1.1 101", 12) != 0) {
                        fprintf(stderr, "no 101: %.*s\n", (int)c->received, c->head);
                        exit(1);
                    }
                    c->upgraded = 1;
                    c->received = 0;
                    if (++upgraded == connections) {
                        /* Every tunnel is open: the measured window starts, each sends its first message. */
                        started = now_seconds();
                        deadline = started + seconds;
                        for (int k = 0; k < connections; k++) tls_write(&all[k], frame, (int)frame_len);
                    }
                    continue;
                }
                c->received += (size_t)n;
                while (c->received >= frame_len) {
                    c->received -= frame_len;
                    round_trips++;
                    tls_write(c, frame, (int)frame_len);
                }
            }
        }
    }
    if (upgraded < connections) {
        fprintf(stderr, "only %d of %d WebSockets opened\n", upgraded, connections);
        return 1;
    }
    printf("round_trips %ld seconds %.3f %s\n", round_trips, now_seconds() - started, negotiated);
    return 0;
}
#endif

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]));
    if (argc == 7 && strcmp(argv[1], "load") == 0)
        return load(atoi(argv[2]), argv[3], atoi(argv[4]), atof(argv[5]), atoi(argv[6]));
    if (argc == 8 && strcmp(argv[1], "load") == 0 && strcmp(argv[7], "tls") == 0) {
#ifdef WS_ECHO_TLS
        return load_tls(atoi(argv[2]), argv[3], atoi(argv[4]), atof(argv[5]), atoi(argv[6]));
#else
        fprintf(stderr, "ws_echo: built without TLS; for \"load ... tls\" build it with"
                        " cc -O2 -DWS_ECHO_TLS -o ws_echo_tls ws_echo.c -lssl -lcrypto\n");
        return 2;
#endif
    }
    fprintf(stderr, "usage: ws_echo serve PORT | ws_echo load PORT PATH CONNECTIONS SECONDS SIZE [tls]\n");
    return 2;
}
