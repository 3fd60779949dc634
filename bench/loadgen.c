/* tcpmsg's load generator: one process, epoll, bytes in and counts out.
 *
 * Speaks tcpmsg's JSON lines or IRC, so tcpmsg and its peers are measured by
 * the same program. Only ever connects to the address it is given (the
 * harness gives 127.0.0.1); every scenario stops after a fixed time.
 *
 *   loadgen PROTO PORT fanout  MEMBERS SENDERS WINDOW SECONDS
 *   loadgen PROTO PORT latency MEMBERS RATE SECONDS
 *   loadgen PROTO PORT connrate CONCURRENCY SECONDS
 *   loadgen PROTO PORT idle    CONNECTIONS          (holds them until stdin closes)
 *   loadgen tcpmsg PORT pm     SENDERS WINDOW SECONDS (to a registered recipient)
 *   loadgen stalls SECONDS                       (no server: see below)
 *
 * PROTO is "tcpmsg" or "irc". Prints one JSON object with the figure, the
 * seconds measured and the CPU seconds this process used meanwhile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define BUF 262144

typedef struct {
    int fd;
    int len;
    int sender;       /* index of the sender this connection is, or -1 */
    int observer;     /* the member whose receipts release the senders' window */
    int state;
    long long arrived; /* latency: when the last read's newest bytes reached the socket */
    char buf[BUF];
} conn_t;

static int irc;
static int port;

static void die(const char *what) { perror(what); exit(2); }

static double mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* The clock the kernel stamps received segments with (SO_TIMESTAMPNS). */
static long long real_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static int dial(int nonblocking) {
    int fd = socket(AF_INET, SOCK_STREAM | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) die("connect");
    return fd;
}

static void send_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) { if (errno == EINTR || errno == EAGAIN) continue; die("write"); }
        s += w; n -= w;
    }
}

/* Blocking: read lines until one holds `needle` (what follows it stays buffered);
 * one holding `refused` instead, if given, ends the run. */
static void wait_until(conn_t *c, const char *needle, const char *refused) {
    for (;;) {
        char *start = c->buf, *end = c->buf + c->len, *nl;
        while ((nl = memchr(start, '\n', end - start))) {
            int found = memmem(start, nl - start, needle, strlen(needle)) != NULL;
            if (!found && refused && memmem(start, nl - start, refused, strlen(refused))) {
                fprintf(stderr, "refused: %.*s\n", (int)(nl - start), start);
                exit(3);
            }
            start = nl + 1;
            if (found) {
                c->len = end - start;
                memmove(c->buf, start, c->len);
                return;
            }
        }
        c->len = end - start;
        memmove(c->buf, start, c->len);
        ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len);
        if (r <= 0) { fprintf(stderr, "server closed while waiting for %s\n", needle); exit(3); }
        c->len += r;
    }
}

static void wait_for(conn_t *c, const char *needle) { wait_until(c, needle, NULL); }

/* Signing in is two halves, so that many connections can greet at once and then be
 * waited for: InspIRCd completes registrations only on a once-a-second tick. */
static void greet(conn_t *c, const char *name) {
    char line[256];
    if (irc)
        /* PASS first: Twisted Words logs in with it; the others accept it. */
        snprintf(line, sizeof line, "PASS x\r\nNICK %s\r\nUSER %s 0 * :%s\r\n", name, name, name);
    else
        snprintf(line, sizeof line, "{\"op\":\"hello\",\"name\":\"%s\"}\n", name);
    send_all(c->fd, line, strlen(line));
}

static void greeted(conn_t *c) { wait_for(c, irc ? " 001 " : "\"reply\":\"hello\""); }

static void sign_in(conn_t *c, const char *name) {
    greet(c, name);
    greeted(c);
}

static void enter_channel(conn_t *c, int create) {
    if (irc) {
        send_all(c->fd, "JOIN #bench\r\n", 13);
        wait_for(c, " 366 ");
    } else if (create) {
        const char *l = "{\"op\":\"create\",\"channel\":\"bench\"}\n";
        send_all(c->fd, l, strlen(l));
        wait_for(c, "\"reply\":\"create\"");
    } else {
        const char *l = "{\"op\":\"join\",\"channel\":\"bench\",\"history\":0}\n";
        send_all(c->fd, l, strlen(l));
        wait_for(c, "\"reply\":\"join\"");
    }
}

static conn_t *members(int n) {
    conn_t *all = calloc(n, sizeof(conn_t));
    if (!all) die("calloc");
    char name[32];
    for (int i = 0; i < n; i++) {
        all[i].fd = dial(0);
        all[i].sender = -1;
        snprintf(name, sizeof name, "b%d", i);
        greet(&all[i], name);
    }
    for (int i = 0; i < n; i++) {
        greeted(&all[i]);
        enter_channel(&all[i], i == 0);
    }
    /* Everyone's joins have been announced to the earlier members: drop that backlog. */
    for (int i = 0; i < n; i++) all[i].len = 0;
    return all;
}

static int say(char *out, int sender, long seq, long long stamp, const char *pad) {
    if (irc)
        return sprintf(out, "PRIVMSG #bench :S%d:%ld:%lld %s\r\n", sender, seq, stamp, pad);
    return sprintf(out, "{\"op\":\"say\",\"channel\":\"bench\",\"text\":\"S%d:%ld:%lld %s\"}\n",
                   sender, seq, stamp, pad);
}

/* The text's "S<sender>:<seq>:<stamp>" in a delivered line, or NULL if it is not one. */
static const char *said_text(const char *line, size_t n) {
    const char *mark = irc ? " PRIVMSG " : "\"event\":\"said\"";
    if (!memmem(line, n, mark, strlen(mark))) return NULL;
    const char *key = irc ? " :S" : "\"text\":\"S";
    const char *at = memmem(line, n, key, strlen(key));
    return at ? at + strlen(key) : NULL;
}

static int epoll_all(conn_t *all, int n) {
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &all[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, all[i].fd, &e);
    }
    return ep;
}

/* Read what is there and hand each complete line to `line`; return lines seen. */
typedef void (*on_line)(conn_t *, const char *, size_t, void *);
static int socket_stamps; /* latency: read with the kernel's receive time of the bytes */
static long unstamped;    /* reads that came without it, timed when read instead */

static ssize_t read_stamped(conn_t *c) {
    struct iovec iov = {c->buf + c->len, BUF - c->len};
    union { char bytes[CMSG_SPACE(sizeof(struct timespec))]; struct cmsghdr align; } control;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                       .msg_controllen = sizeof control.bytes};
    ssize_t r = recvmsg(c->fd, &m, 0);
    c->arrived = 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec t;
            memcpy(&t, CMSG_DATA(h), sizeof t);
            c->arrived = t.tv_sec * 1000000000LL + t.tv_nsec;
        }
    if (r > 0 && !c->arrived) unstamped++;
    return r;
}

static void drain(conn_t *c, on_line line, void *ctx) {
    ssize_t r = socket_stamps ? read_stamped(c) : read(c->fd, c->buf + c->len, BUF - c->len);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN) return;
        fprintf(stderr, "a connection closed during the run\n");
        exit(3);
    }
    c->len += r;
    char *start = c->buf, *end = c->buf + c->len, *nl;
    while ((nl = memchr(start, '\n', end - start))) {
        line(c, start, nl - start, ctx);
        start = nl + 1;
    }
    c->len = end - start;
    memmove(c->buf, start, c->len);
}

/* Keep every sender's window full and read until the deadline: the loop of fan-out and pm.
 * `next` writes one message for sender s and returns its length. */
typedef int (*next_message)(char *out, int s, long seq);

static double run_windowed(conn_t *senders_conns, int senders, long *inflight, int window,
                           double seconds, int ep, next_message next, on_line line, void *ctx,
                           double *cpu) {
    struct epoll_event ev[256];
    char *out = malloc(window * 200);
    long seq = 0;
    double cpu0 = cpu_seconds(), t0 = mono(), deadline = t0 + seconds;
    while (mono() < deadline) {
        for (int s = 0; s < senders; s++) {
            int len = 0;
            while (inflight[s] < window) {
                len += next(out + len, s, seq++);
                inflight[s]++;
            }
            if (len) send_all(senders_conns[s].fd, out, len);
        }
        int k = epoll_wait(ep, ev, 256, 10);
        for (int i = 0; i < k; i++) drain(ev[i].data.ptr, line, ctx);
    }
    free(out);
    *cpu = cpu_seconds() - cpu0;
    return mono() - t0;
}

/* Scenario 1: fan-out. */
typedef struct { long deliveries; long *inflight; } fanout_t;

static void fanout_line(conn_t *c, const char *l, size_t n, void *ctx) {
    fanout_t *f = ctx;
    const char *text = said_text(l, n);
    if (!text) return;
    f->deliveries++;
    if (c->observer) f->inflight[atoi(text)]--;
}

static int next_said(char *out, int s, long seq) { return say(out, s, seq, 0, "fan-out"); }

static void fanout(int n, int senders, int window, double seconds) {
    conn_t *all = members(n);
    fanout_t f = {0, calloc(senders, sizeof(long))};
    all[senders].observer = 1;
    for (int s = 0; s < senders; s++) all[s].sender = s;
    double cpu, elapsed = run_windowed(all, senders, f.inflight, window, seconds, epoll_all(all, n),
                                       next_said, fanout_line, &f, &cpu);
    printf("{\"scenario\":\"fanout\",\"value\":%.0f,\"unit\":\"deliveries/s\",\"seconds\":%.3f,"
           "\"loadgen_cpu\":%.3f}\n", f.deliveries / elapsed, elapsed, cpu / elapsed);
}

/* Scenario 2: latency at a paced rate. Each copy is timed twice from the stamp in its
 * text (CLOCK_REALTIME): when it reached the receiver's socket (the kernel's receive
 * stamp, SO_TIMESTAMPNS), the server's latency; and when this program read it, which
 * adds this program's own delay in reading 99 sockets in turn. */
typedef struct { long long *arrived, *read; long count, capacity; } latency_t;

static void latency_line(conn_t *c, const char *l, size_t n, void *ctx) {
    latency_t *t = ctx;
    const char *text = said_text(l, n);
    if (!text || c->sender == 0 || t->count >= t->capacity) return;
    long long stamp = atoll(strchr(strchr(text, ':') + 1, ':') + 1);
    /* A read of several lines carries its newest segment's stamp: never early. */
    t->arrived[t->count] = (c->arrived ? c->arrived : real_ns()) - stamp;
    t->read[t->count++] = real_ns() - stamp;
}

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void latency(int n, int rate, double seconds) {
    conn_t *all = members(n);
    all[0].sender = 0;
    int one = 1;
    for (int i = 1; i < n; i++)
        if (setsockopt(all[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
            die("SO_TIMESTAMPNS");
    socket_stamps = 1;
    latency_t t = {0};
    t.capacity = (long)(rate * seconds + 10) * (n - 1);
    t.arrived = malloc(t.capacity * sizeof(long long));
    t.read = malloc(t.capacity * sizeof(long long));
    int ep = epoll_all(all, n);
    struct epoll_event ev[256];
    char out[512];
    long sent = 0;
    double cpu0 = cpu_seconds(), t0 = mono(), stop = t0 + seconds;
    for (;;) {
        double now = mono();
        while (now < stop && sent < (long)((now - t0) * rate) + 1) {
            int len = say(out, 0, sent++, real_ns(), "latency");
            send_all(all[0].fd, out, len);
        }
        if (now >= stop && (t.count >= sent * (n - 1) || now > stop + 2)) break;
        /* Sleep exactly until the next send is due: no spinning, no coarse rounding. */
        double wait = now >= stop ? 0.01 : t0 + (double)sent / rate - now;
        if (wait < 0) wait = 0;
        struct timespec timeout = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        int k = epoll_pwait2(ep, ev, 256, &timeout, NULL);
        for (int i = 0; i < k; i++) drain(ev[i].data.ptr, latency_line, &t);
    }
    double elapsed = mono() - t0, cpu = cpu_seconds() - cpu0;
    qsort(t.arrived, t.count, sizeof(long long), by_value);
    qsort(t.read, t.count, sizeof(long long), by_value);
    double ms = 1e6;
#define AT(a, q) (t.count ? a[(long)((t.count - 1) * (q))] / ms : 0)
    printf("{\"scenario\":\"latency\",\"value\":%.3f,\"unit\":\"ms p99\",\"p50\":%.3f,\"p99\":%.3f,"
           "\"p999\":%.3f,\"max\":%.3f,\"read_p50\":%.3f,\"read_p99\":%.3f,\"read_p999\":%.3f,"
           "\"read_max\":%.3f,\"unstamped_reads\":%ld,\"copies\":%ld,\"lost\":%ld,"
           "\"seconds\":%.3f,\"loadgen_cpu\":%.3f}\n",
           AT(t.arrived, 0.99), AT(t.arrived, 0.5), AT(t.arrived, 0.99), AT(t.arrived, 0.999),
           AT(t.arrived, 1.0), AT(t.read, 0.5), AT(t.read, 0.99), AT(t.read, 0.999),
           AT(t.read, 1.0), unstamped, t.count, sent * (n - 1) - t.count, elapsed, cpu / elapsed);
}

/* Scenario 4: connect, handshake, quit, close; CONCURRENCY at a time. */
enum { CONNECTING, GREETING, QUITTING };

static void start_visit(int ep, conn_t *c) {
    c->fd = dial(1);
    c->state = CONNECTING;
    c->len = 0;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
}

static void connrate(int concurrency, double seconds) {
    conn_t *slots = calloc(concurrency, sizeof(conn_t));
    int ep = epoll_create1(0);
    for (int i = 0; i < concurrency; i++) start_visit(ep, &slots[i]);
    struct epoll_event ev[256];
    long done = 0, names = 0;
    char line[256];
    double cpu0 = cpu_seconds(), t0 = mono(), deadline = t0 + seconds;
    while (mono() < deadline) {
        int k = epoll_wait(ep, ev, 256, 10);
        for (int i = 0; i < k; i++) {
            conn_t *c = ev[i].data.ptr;
            if (c->state == CONNECTING) {
                long name = names++;
                int n = irc ? sprintf(line, "PASS x\r\nNICK v%ld\r\nUSER v%ld 0 * :v\r\n", name, name)
                            : sprintf(line, "{\"op\":\"hello\",\"name\":\"v%ld\"}\n", name);
                send_all(c->fd, line, n);
                struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                c->state = GREETING;
                continue;
            }
            ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len - 1);
            if (r < 0 && errno == EAGAIN) continue;
            if (r > 0) {
                c->len += r;
                c->buf[c->len] = 0;
                const char *greeted = irc ? " 001 " : "\"reply\":\"hello\"";
                if (c->state == GREETING && memmem(c->buf, c->len, greeted, strlen(greeted))) {
                    const char *quit = irc ? "QUIT\r\n" : "{\"op\":\"quit\"}\n";
                    send_all(c->fd, quit, strlen(quit));
                    c->state = QUITTING;
                }
                if (c->len > BUF / 2) c->len = 0;
                continue;
            }
            /* Closed by the server after the quit: one visit done. */
            if (c->state == QUITTING) done++;
            close(c->fd);
            start_visit(ep, c);
        }
    }
    double elapsed = mono() - t0, cpu = cpu_seconds() - cpu0;
    printf("{\"scenario\":\"connrate\",\"value\":%.0f,\"unit\":\"handshakes/s\",\"seconds\":%.3f,"
           "\"loadgen_cpu\":%.3f}\n", done / elapsed, elapsed, cpu / elapsed);
}

/* Scenario 3: idle, handshaken connections, held until stdin closes. */
static void idle(int n) {
    conn_t *c = malloc(sizeof(conn_t));
    int *fds = malloc(n * sizeof(int));
    char name[32];
    /* Greet in blocks of 8, fewer than the smallest listen backlog met (ngircd's 10):
     * a connect past a full backlog has its SYN dropped and retried a second later.
     * Between blocks, read the welcomes that come within 5 ms; a server that answers
     * at once is so kept to its own pace, and one that registers on a timer
     * (InspIRCd, once a second) gets up to AHEAD greetings to answer at its tick.
     * Welcomes are read one connection at a time: no read buffer per connection. */
    enum { BLOCK = 8, AHEAD = 1000, PATIENCE_MS = 5 };
    int answered = 0;
    for (int first = 0; first < n; first += BLOCK) {
        int last = first + BLOCK < n ? first + BLOCK : n;
        for (int i = first; i < last; i++) {
            fds[i] = dial(0);
            snprintf(name, sizeof name, "i%d", i);
            c->fd = fds[i];
            greet(c, name);
        }
        while (answered < last) {
            struct pollfd oldest = {.fd = fds[answered], .events = POLLIN};
            int must = last == n || last - answered >= AHEAD;
            if (!must && poll(&oldest, 1, PATIENCE_MS) <= 0) break;
            memset(c, 0, sizeof *c);
            c->fd = fds[answered++];
            greeted(c);
        }
    }
    printf("{\"scenario\":\"idle\",\"ready\":%d}\n", n);
    fflush(stdout);
    char sink[64];
    while (read(0, sink, sizeof sink) > 0) {}
    for (int i = 0; i < n; i++) close(fds[i]);
}

/* Scenario 5: private messages acknowledged, WINDOW in flight per sender. */
typedef struct { long acks, refused; long *inflight; } pm_t;

static void pm_line(conn_t *c, const char *l, size_t n, void *ctx) {
    pm_t *p = ctx;
    if (c->sender < 0) return; /* the recipient: message_waiting events */
    if (memmem(l, n, "\"reply\":\"send\"", 14)) { p->acks++; p->inflight[c->sender]--; }
    else if (memmem(l, n, "\"error\"", 7)) { p->refused++; p->inflight[c->sender]--; }
}

static int next_private(char *out, int s, long seq) {
    (void)s;
    return sprintf(out, "{\"op\":\"send\",\"to\":\"Recipient\",\"text\":\"m%ld\"}\n", seq);
}

/* Blocking: the answer to the one request in flight; a refusal ends the run. */
static void answered(conn_t *c, const char *op) {
    char reply[64], refused[64];
    snprintf(reply, sizeof reply, "\"reply\":\"%s\"", op);
    snprintf(refused, sizeof refused, "\"op\":\"%s\"", op);
    wait_until(c, reply, refused);
}

static void pm(int senders, int window, double seconds) {
    int n = senders + 1;
    conn_t *all = calloc(n, sizeof(conn_t));
    char name[32];
    for (int i = 0; i < n; i++) {
        all[i].fd = dial(0);
        all[i].sender = i - 1;
        snprintf(name, sizeof name, i ? "p%d" : "Recipient", i);
        sign_in(&all[i], name);
    }
    /* A registered recipient: its inbox outlives its connection and the server's
     * restarts, so what is measured is what "durable" promises. An unregistered
     * one's inbox goes when it disconnects, and at a restart. */
    const char *reg = "{\"op\":\"register\",\"password\":\"bench-password\"}\n";
    send_all(all[0].fd, reg, strlen(reg));
    answered(&all[0], "register");
    pm_t p = {0, 0, calloc(senders, sizeof(long))};
    double cpu, elapsed = run_windowed(all + 1, senders, p.inflight, window, seconds,
                                       epoll_all(all, n), next_private, pm_line, &p, &cpu);
    printf("{\"scenario\":\"pm\",\"value\":%.0f,\"unit\":\"acks/s\",\"refused\":%ld,\"seconds\":%.3f,"
           "\"loadgen_cpu\":%.3f}\n", p.acks / elapsed, p.refused, elapsed, cpu / elapsed);
}

/* The machine itself: spin on this CPU and count the pauses in which it did not run
 * this program (the host ran something else, or the kernel did), as a server on this
 * CPU would lose them. No socket, no server. */
static void stalls(double seconds) {
    const double over[] = {0.0001, 0.001, 0.002, 0.005};
    long pauses[4] = {0};
    double t0 = mono(), last = t0, lost = 0, worst = 0;
    for (;;) {
        double t = mono(), gap = t - last;
        last = t;
        if (t - t0 >= seconds) break;
        if (gap < over[0]) continue;
        lost += gap;
        if (gap > worst) worst = gap;
        for (int i = 0; i < 4; i++) pauses[i] += gap >= over[i];
    }
    printf("{\"scenario\":\"stalls\",\"value\":%ld,\"unit\":\"pauses of 1 ms or more\","
           "\"over_0_1ms\":%ld,\"over_2ms\":%ld,\"over_5ms\":%ld,\"worst_ms\":%.2f,"
           "\"lost_share\":%.4f,\"seconds\":%.3f,\"loadgen_cpu\":1.0}\n",
           pauses[1], pauses[0], pauses[2], pauses[3], worst * 1e3, lost / seconds, seconds);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "stalls")) {
        stalls(atof(argv[2]));
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: loadgen tcpmsg|irc PORT SCENARIO ARGS... | loadgen stalls SECONDS\n");
        return 2;
    }
    irc = strcmp(argv[1], "irc") == 0;
    port = atoi(argv[2]);
    struct rlimit files;
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    const char *s = argv[3];
    if (!strcmp(s, "fanout") && argc == 8)
        fanout(atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atof(argv[7]));
    else if (!strcmp(s, "latency") && argc == 7)
        latency(atoi(argv[4]), atoi(argv[5]), atof(argv[6]));
    else if (!strcmp(s, "connrate") && argc == 6)
        connrate(atoi(argv[4]), atof(argv[5]));
    else if (!strcmp(s, "idle") && argc == 5)
        idle(atoi(argv[4]));
    else if (!strcmp(s, "pm") && argc == 7 && !irc)
        pm(atoi(argv[4]), atoi(argv[5]), atof(argv[6]));
    else {
        fprintf(stderr, "loadgen: unknown scenario or wrong arguments\n");
        return 2;
    }
    return 0;
}
