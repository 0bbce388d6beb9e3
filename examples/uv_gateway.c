/*
 * examples/uv_gateway.c - oncestore in an event-loop gateway (libuv).
 *
 * The pattern to copy.  A single-threaded loop serves many clients; it must
 * never block on the disk, yet it must never tell a client "yes" before the
 * write behind that "yes" is durable.  oncestore splits the two:
 *
 *   1. the request calls the _async form of the write.  Single use is
 *      decided right there (the code is spent for everyone else at once);
 *      the call hands back a ticket and returns without touching the disk;
 *   2. the answer waits, in the connection's reply queue, until the store's
 *      durable position reaches the ticket.  once_ticket_fd is an eventfd
 *      that fires when the position moves; a uv_poll_t on it calls
 *      once_tickets_drain and sends every answer whose ticket is covered.
 *
 *   RULE: answer only when  ticket <= durable position.  A ticket of 0 (the
 *   call changed nothing: SPENT, NOT_FOUND, INVALID) is covered at once.
 *
 * Replies on one connection go out in request order (a client pipelining
 * requests matches answers to requests by position), so an answer that is
 * ready waits behind an earlier one that is not.  If the log fails, the
 * store answers ONCE_IO from then on and every answer still waiting becomes
 * an error: its effect stays in force in memory (fail closed) but might not
 * survive a crash, so the client must not be told it succeeded.
 *
 * The protocol is a toy line protocol (one request per line, one reply line
 * per request, in order):
 *
 *   TAKE <code>    redeem an authorization code, as a /token endpoint does
 *   JTI <jti>      record a DPoP proof's jti (replay cache)
 *   PUT <code>     store a demo code, as /authorize does (for trying it by hand)
 *
 * Each reply is "<STATUS> <ticket> <durable>": the status name (OK, SPENT,
 * NOT_FOUND, INVALID, IO, ...), the ticket the answer waited for and the
 * durable position when it was sent.  The two numbers are there to watch the
 * rule at work (and for the self-test); a real gateway sends neither.
 *
 * Usage:
 *   uv_gateway DIR [PORT]         serve on 127.0.0.1:PORT (0 or none: any
 *                                 free port, printed); SIGINT or SIGTERM
 *                                 stops it
 *   uv_gateway --selftest [DIR]   the CI test: a client in the same loop,
 *                                 TAP output (DIR: a fresh temporary one)
 *
 * Try it:  uv_gateway /tmp/gw 7000 &  then
 *          printf 'PUT abc\nTAKE abc\nTAKE abc\nJTI j1\nJTI j1\n' | nc -N 127.0.0.1 7000
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oncestore.h>
#include <uv.h>

#define IN_BUF 16384            /* per-connection input buffer; longest line */
#define MAX_PENDING 1024        /* replies queued on one connection before it stops reading */
#define MAX_WRITE_QUEUE 262144  /* bytes not yet taken by the socket before it stops reading */
#define JTI_TTL 300             /* seconds a jti is remembered: proof lifetime + 2 x skew */
#define CODE_TTL 600            /* lifetime of a demo code (PUT) */
#define ACCESS_TOKEN_TTL 3600

/* ------------------------------------------------------------------------ */
/* The gateway                                                              */
/* ------------------------------------------------------------------------ */

/* One answer, decided, waiting until its ticket is durable. */
struct reply {
	struct reply *next;
	once_ticket ticket; /* send when the durable position >= ticket */
	once_status status; /* the answer */
};

struct gateway;

struct conn {
	uv_tcp_t tcp; /* first member: a handle pointer is a conn pointer */
	struct gateway *gw;
	struct conn *prev, *next; /* gw->conns */
	struct reply *head, *tail; /* answers in request order */
	size_t pending;            /* length of that queue */
	char in[IN_BUF];           /* bytes read, not yet a whole line */
	size_t inlen;
	bool reading, eof, finishing, closing;
};

struct gateway {
	uv_loop_t *loop;
	once_store *store;
	uv_tcp_t listener;
	uv_poll_t ticket_poll; /* readable when the durable position moves */
	bool polling;
	bool stopping;
	bool log_failed; /* once_tickets_drain answered ONCE_IO */
	struct conn *conns;
	once_ticket last_ticket; /* highest ticket handed out (for shutdown) */
	/* Figures for the curious (and the self-test): answers sent, answers
	 * that had to wait for the disk, times the ticket fd fired, times a
	 * connection stopped reading. */
	uint64_t answered, waited, wakeups, paused;
};

static void conn_pump(struct conn *c);

static void conn_closed(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->gw->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	/* Answers never sent: the client went away.  Their effects stand (a
	 * code stays spent), which is safe: nobody was told "yes". */
	while (c->head) {
		struct reply *r = c->head;
		c->head = r->next;
		free(r);
	}
	free(c);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void conn_shutdown_done(uv_shutdown_t *req, int status)
{
	(void)status;
	struct conn *c = req->data;
	free(req);
	conn_close(c);
}

/* Ends a connection gracefully: the queued writes go out, then FIN. */
static void conn_finish(struct conn *c)
{
	if (c->finishing || c->closing)
		return;
	c->finishing = true;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
	uv_shutdown_t *req = malloc(sizeof *req);
	if (!req) {
		conn_close(c);
		return;
	}
	req->data = c;
	if (uv_shutdown(req, (uv_stream_t *)&c->tcp, conn_shutdown_done) != 0) {
		free(req);
		conn_close(c);
	}
}

/* A uv_write_t and the bytes it sends, freed together. */
struct out {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static void conn_written(uv_write_t *req, int status)
{
	struct out *o = (struct out *)req;
	struct conn *c = o->c;
	free(o);
	if (status < 0) {
		conn_close(c); /* UV_ECANCELED: already closing */
		return;
	}
	conn_pump(c); /* the socket took bytes: maybe read again */
}

/*
 * Sends, in order, every queued answer whose ticket the durable position
 * covers, and stops at the first one it does not (answers keep request
 * order).  `st` and `durable` are what once_tickets_drain or
 * once_tickets_durable returned: with ONCE_IO every answer not covered
 * becomes IO, since its ticket will never be durable.
 */
static void conn_flush(struct conn *c, once_status st, once_ticket durable)
{
	if (c->closing || !c->head)
		return;
	size_t n = 0;
	for (struct reply *r = c->head; r && (r->ticket <= durable || st == ONCE_IO); r = r->next)
		n++;
	if (n == 0)
		return;
	const size_t line_max = 64; /* "NOT_FOUND 18446744073709551615 18446744073709551615\n" */
	struct out *o = malloc(sizeof *o + n * line_max);
	if (!o) {
		conn_close(c);
		return;
	}
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		struct reply *r = c->head;
		once_status answer = r->ticket <= durable ? r->status : ONCE_IO;
		len += (size_t)snprintf(o->data + len, line_max, "%s %" PRIu64 " %" PRIu64 "\n",
		                        once_status_name(answer), r->ticket, durable);
		c->head = r->next;
		free(r);
	}
	if (!c->head)
		c->tail = NULL;
	c->pending -= n;
	c->gw->answered += n;
	o->c = c;
	uv_buf_t buf = uv_buf_init(o->data, (unsigned)len);
	if (uv_write(&o->req, (uv_stream_t *)&c->tcp, &buf, 1, conn_written) != 0) {
		free(o);
		conn_close(c);
	}
}

/* Queues an answer behind the connection's earlier ones. */
static bool conn_queue(struct conn *c, once_status status, once_ticket ticket)
{
	struct reply *r = malloc(sizeof *r);
	if (!r)
		return false;
	r->next = NULL;
	r->ticket = ticket;
	r->status = status;
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	c->pending++;
	if (ticket > c->gw->last_ticket)
		c->gw->last_ticket = ticket;
	return true;
}

static once_ticket max_ticket(once_ticket a, once_ticket b)
{
	return a > b ? a : b;
}

/*
 * /token with grant_type=authorization_code, reduced to its store calls.
 * Every write is an _async call; the answer must wait for the LAST ticket
 * (tickets become durable in order, so that covers the earlier ones).
 */
static once_status take_code(once_store *s, const char *code, size_t len, once_ticket *wait)
{
	char hash[ONCE_SECRET_LEN + 1];
	if (once_secret_hash(code, len, hash) != ONCE_OK)
		return ONCE_INVALID;
	once_code *rec = NULL;
	once_code_meta *meta = NULL;
	once_ticket t = 0;
	once_status st = once_code_take_async(s, hash, ONCE_SECRET_LEN, &rec, &meta, &t);
	*wait = t;
	if (st == ONCE_OK) {
		int64_t now = (int64_t)time(NULL);
		if (rec->expires_at < now) {
			/* Claimed but never finalized: a later take gets NOT_FOUND. */
			st = ONCE_EXPIRED;
		} else {
			/* Here a real /token checks PKCE, redirect_uri and the client,
			 * then mints tokens and records the access token's jti under
			 * the code's family, so that a replay can revoke it. */
			if (rec->family_id) {
				char at[4 + ONCE_SECRET_LEN + 1];
				snprintf(at, sizeof at, "at.%s", hash);
				st = once_code_record_access_token_async(s, rec->family_id,
				                                         strlen(rec->family_id), at,
				                                         strlen(at), now + ACCESS_TOKEN_TTL, &t);
				*wait = max_ticket(*wait, t);
			}
			/* Redeemed: from now on a replay is SPENT. */
			if (st == ONCE_OK) {
				st = once_code_finalize_async(s, hash, ONCE_SECRET_LEN, &t);
				*wait = max_ticket(*wait, t);
			}
		}
	} else if (st == ONCE_SPENT && meta && meta->family_id) {
		/* A replay of a redeemed code: revoke what it minted.  The answer
		 * is an error anyway, but it waits for the revocation too. */
		(void)once_code_revoke_family_access_tokens_async(s, meta->family_id,
		                                                  strlen(meta->family_id), &t);
		*wait = max_ticket(*wait, t);
	}
	once_free(rec);
	once_free(meta);
	return st;
}

/* /authorize's half, for trying the gateway by hand: a demo code. */
static once_status put_code(once_store *s, const char *code, size_t len, once_ticket *wait)
{
	char hash[ONCE_SECRET_LEN + 1], family[4 + ONCE_SECRET_LEN + 1];
	if (once_secret_hash(code, len, hash) != ONCE_OK)
		return ONCE_INVALID;
	snprintf(family, sizeof family, "fam.%s", hash);
	once_code c = {
		.client_id = "demo-client",
		.subject = "alice",
		.redirect_uri = "https://app.example/cb",
		.family_id = family,
		.expires_at = (int64_t)time(NULL) + CODE_TTL,
	};
	return once_code_put_async(s, hash, ONCE_SECRET_LEN, &c, wait);
}

/* Runs one request line: the answer and the ticket it must wait for. */
static once_status run_request(struct gateway *gw, char *line, size_t len, once_ticket *wait)
{
	*wait = 0;
	if (len > 0 && line[len - 1] == '\r')
		len--; /* telnet, nc -C */
	char *sp = memchr(line, ' ', len);
	if (!sp || sp == line + len - 1)
		return ONCE_INVALID;
	size_t cmd_len = (size_t)(sp - line);
	const char *arg = sp + 1;
	size_t arg_len = len - cmd_len - 1;
	if (cmd_len == 4 && memcmp(line, "TAKE", 4) == 0)
		return take_code(gw->store, arg, arg_len, wait);
	if (cmd_len == 3 && memcmp(line, "JTI", 3) == 0)
		return once_replay_check_async(gw->store, arg, arg_len, JTI_TTL, wait);
	if (cmd_len == 3 && memcmp(line, "PUT", 3) == 0)
		return put_code(gw->store, arg, arg_len, wait);
	return ONCE_INVALID;
}

static bool conn_full(const struct conn *c)
{
	return c->pending >= MAX_PENDING ||
	       uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) >= MAX_WRITE_QUEUE;
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = (struct conn *)h;
	/* Read straight into the line buffer, after what it holds. */
	*buf = uv_buf_init(c->in + c->inlen, (unsigned)(sizeof c->in - c->inlen));
}

static void conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = (struct conn *)stream;
	if (nread == UV_EOF) {
		c->eof = true; /* answer what was asked, then close (conn_pump) */
	} else if (nread < 0) {
		conn_close(c);
		return;
	} else {
		c->inlen += (size_t)nread;
	}
	conn_pump(c);
}

/*
 * Runs the complete lines the connection holds (while it has room for more
 * answers), sends what is already covered (ticket 0 among it), and starts or
 * stops reading: a client that pipelines faster than the disk syncs, or
 * does not read its answers, is paused, never buffered without bound.
 */
static void conn_pump(struct conn *c)
{
	struct gateway *gw = c->gw;
	if (c->closing || c->finishing)
		return;
	size_t off = 0;
	char *nl = NULL;
	struct reply *old_tail = c->tail;
	while (!gw->stopping && !conn_full(c) &&
	       (nl = memchr(c->in + off, '\n', c->inlen - off)) != NULL) {
		size_t len = (size_t)(nl - (c->in + off));
		once_ticket ticket;
		once_status st = run_request(gw, c->in + off, len, &ticket);
		off += len + 1;
		if (!conn_queue(c, st, ticket)) {
			conn_close(c);
			return;
		}
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	bool more_lines = memchr(c->in, '\n', c->inlen) != NULL;
	if (c->inlen == sizeof c->in && !more_lines) {
		conn_close(c); /* a line longer than the buffer: not this protocol */
		return;
	}

	/* No system call: the position as of now. */
	once_ticket durable;
	once_status st = once_tickets_durable(gw->store, &durable);
	for (struct reply *r = old_tail ? old_tail->next : c->head; r; r = r->next)
		gw->waited += r->ticket > durable;
	conn_flush(c, st, durable);
	if (c->closing)
		return;

	bool want_read = !c->eof && !gw->stopping && !conn_full(c) && !more_lines;
	if (want_read && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) != 0) {
			conn_close(c);
			return;
		}
		c->reading = true;
	} else if (!want_read && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
		if (!c->eof && !gw->stopping)
			gw->paused++;
	}
	if (c->eof && !c->head && !more_lines)
		conn_finish(c);
}

/*
 * The durable position moved (or the log failed): the eventfd is readable.
 * once_tickets_drain reads it (re-arming it) and says how far the log is
 * durable; every connection sends what that covers.
 */
static void tickets_ready(uv_poll_t *poll, int status, int events)
{
	(void)events;
	struct gateway *gw = poll->data;
	if (status < 0) {
		fprintf(stderr, "uv_gateway: poll on the ticket fd: %s\n", uv_strerror(status));
		return;
	}
	once_ticket durable;
	uv_os_fd_t fd;
	uv_fileno((const uv_handle_t *)poll, &fd);
	once_status st = once_tickets_drain(gw->store, fd, &durable);
	if (st == ONCE_IO && !gw->log_failed) {
		gw->log_failed = true;
		fprintf(stderr, "uv_gateway: the log failed at %" PRIu64
		                "; answering IO to everything after it\n", durable);
	}
	gw->wakeups++;
	for (struct conn *c = gw->conns, *next; c; c = next) {
		next = c->next;
		conn_flush(c, st, durable);
		conn_pump(c); /* room again: run lines held back, read again */
	}
}

static void conn_free(uv_handle_t *h)
{
	free(h); /* the handle is the conn's first member */
}

static void on_connection(uv_stream_t *server, int status)
{
	struct gateway *gw = server->data;
	if (status < 0 || gw->stopping)
		return;
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->gw = gw;
	uv_tcp_init(gw->loop, &c->tcp);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		uv_close((uv_handle_t *)&c->tcp, conn_free);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->next = gw->conns;
	if (gw->conns)
		gw->conns->prev = c;
	gw->conns = c;
	conn_pump(c); /* starts reading */
}

/*
 * Listens on 127.0.0.1:port (0: any free port; *bound receives it) and
 * polls the store's ticket descriptor.
 */
static int gateway_start(struct gateway *gw, uv_loop_t *loop, once_store *store, int port,
                         int *bound)
{
	memset(gw, 0, sizeof *gw);
	gw->loop = loop;
	gw->store = store;

	/* The ticket descriptor (owned by the store: never close it).  It is
	 * -1 for a memory-only store, whose tickets are all 0, so such a host
	 * would simply not poll; this store has a data directory, so -1 means
	 * the eventfd could not be made, and answers would never go out. */
	int fd = once_ticket_fd(store);
	if (fd < 0) {
		perror("uv_gateway: once_ticket_fd");
		return -1;
	}
	int rc = uv_poll_init(loop, &gw->ticket_poll, fd);
	if (rc != 0) {
		fprintf(stderr, "uv_gateway: polling the ticket fd: %s\n", uv_strerror(rc));
		return -1;
	}
	gw->ticket_poll.data = gw;
	gw->polling = true;
	rc = uv_poll_start(&gw->ticket_poll, UV_READABLE, tickets_ready);
	if (rc != 0) {
		fprintf(stderr, "uv_gateway: polling the ticket fd: %s\n", uv_strerror(rc));
		uv_close((uv_handle_t *)&gw->ticket_poll, NULL);
		return -1;
	}

	struct sockaddr_in addr;
	struct sockaddr_storage name;
	int namelen = sizeof name;
	uv_tcp_init(loop, &gw->listener);
	gw->listener.data = gw;
	rc = uv_ip4_addr("127.0.0.1", port, &addr);
	if (rc == 0)
		rc = uv_tcp_bind(&gw->listener, (const struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&gw->listener, 128, on_connection);
	if (rc == 0)
		rc = uv_tcp_getsockname(&gw->listener, (struct sockaddr *)&name, &namelen);
	if (rc != 0) {
		fprintf(stderr, "uv_gateway: listen on 127.0.0.1:%d: %s\n", port, uv_strerror(rc));
		uv_close((uv_handle_t *)&gw->listener, NULL);
		if (gw->polling)
			uv_close((uv_handle_t *)&gw->ticket_poll, NULL);
		return -1;
	}
	*bound = ntohs(((struct sockaddr_in *)&name)->sin_port);
	return 0;
}

/*
 * Stops: no new connections or requests; the answers still waiting are
 * sent once their tickets are durable (a blocking wait, acceptable only
 * here, at shutdown), then every connection is closed.  The loop returns
 * when the last handle is closed; then once_close.
 */
static void gateway_stop(struct gateway *gw)
{
	if (gw->stopping)
		return;
	gw->stopping = true;
	uv_close((uv_handle_t *)&gw->listener, NULL);
	if (gw->polling)
		uv_close((uv_handle_t *)&gw->ticket_poll, NULL);
	(void)once_ticket_wait(gw->store, gw->last_ticket); /* OK, or IO: failed */
	once_ticket durable;
	once_status st = once_tickets_durable(gw->store, &durable);
	for (struct conn *c = gw->conns, *next; c; c = next) {
		next = c->next;
		conn_flush(c, st, durable);
		conn_finish(c);
	}
}

/* ------------------------------------------------------------------------ */
/* Serving                                                                  */
/* ------------------------------------------------------------------------ */

static void print_log(void *ctx, once_log_level level, const char *message)
{
	(void)ctx;
	static const char *const names[] = {"error", "warning", "info"};
	fprintf(stderr, "# oncestore %s: %s\n", names[level <= ONCE_LOG_INFO ? level : 0], message);
}

static once_status open_store(const char *dir, once_store **s)
{
	once_options opt;
	once_options_init(&opt);
	opt.dir = dir;
	opt.sync = ONCE_SYNC_ALWAYS; /* durable = on stable storage (fdatasync) */
	opt.log = print_log;
	return once_open(&opt, s);
}

struct server {
	struct gateway gw;
	uv_signal_t sigint, sigterm;
};

static void on_signal(uv_signal_t *sig, int signum)
{
	(void)signum;
	struct server *sv = sig->data;
	fprintf(stderr, "uv_gateway: stopping\n");
	gateway_stop(&sv->gw);
	uv_close((uv_handle_t *)&sv->sigint, NULL);
	uv_close((uv_handle_t *)&sv->sigterm, NULL);
}

static int serve(const char *dir, int port)
{
	once_store *s;
	once_status st = open_store(dir, &s);
	if (st != ONCE_OK) {
		fprintf(stderr, "uv_gateway: once_open %s: %s\n", dir, once_strerror(st));
		return 1;
	}
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct server sv;
	int bound;
	if (gateway_start(&sv.gw, &loop, s, port, &bound) != 0) {
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		once_close(s);
		return 1;
	}
	uv_signal_init(&loop, &sv.sigint);
	uv_signal_init(&loop, &sv.sigterm);
	sv.sigint.data = sv.sigterm.data = &sv;
	uv_signal_start(&sv.sigint, on_signal, SIGINT);
	uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
	printf("listening on 127.0.0.1:%d (data directory %s)\n", bound, dir);
	fflush(stdout);

	uv_run(&loop, UV_RUN_DEFAULT); /* returns once every handle is closed */
	uv_loop_close(&loop);
	/* Every ticket handed out is durable by now (gateway_stop waited). */
	st = once_close(s);
	printf("answered %" PRIu64 " requests (%" PRIu64 " waited for the disk); once_close: %s\n",
	       sv.gw.answered, sv.gw.waited, once_status_name(st));
	return st == ONCE_OK ? 0 : 1;
}

/* ------------------------------------------------------------------------ */
/* Self-test (CI): a pipelining client in the same loop, then a reopen       */
/* ------------------------------------------------------------------------ */

#define N_CODES 2000     /* codes put, each taken */
#define N_UNTOUCHED 50   /* codes put and never taken */
#define N_JTIS 2000      /* jtis, each sent twice */
#define N_CONNS 4
#define N_CHECKS 12

enum req_kind {
	REQ_TAKE,       /* first take of a code on its own connection */
	REQ_TAKE_RACE,  /* a take of the same code on another connection */
	REQ_TAKE_AGAIN, /* a later take on the same connection: SPENT */
	REQ_JTI,
	REQ_JTI_RACE,
	REQ_JTI_AGAIN,  /* SPENT */
	REQ_UNKNOWN,    /* a code never put: NOT_FOUND, ticket 0 */
	REQ_BAD,        /* not the protocol: INVALID, ticket 0 */
};

struct req {
	enum req_kind kind;
	uint32_t item;
};

typedef char secret[ONCE_SECRET_LEN + 1];

struct selftest;

struct client {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	struct selftest *t;
	char *out;
	size_t outlen, outcap;
	struct req *reqs;
	size_t nreqs, reqcap, answered;
	char in[4096];
	size_t inlen;
	once_ticket last_durable;
};

struct selftest {
	once_store *store;
	struct gateway gw;
	struct client clients[N_CONNS];
	int clients_open;
	secret codes[N_CODES + N_UNTOUCHED], hashes[N_CODES + N_UNTOUCHED], jtis[N_JTIS];
	/* Answers seen per code and jti. */
	uint8_t code_ok[N_CODES], code_lost[N_CODES], jti_ok[N_JTIS];
	bool code_spent[N_CODES]; /* a take answered SPENT: its family was revoked */
	bool code_error[N_CODES]; /* a take answered neither OK nor SPENT/NOT_FOUND */
	/* Failures, by check; the first few are printed as TAP comments. */
	uint64_t bad_answer, bad_early, bad_zero, bad_order, bad_transport, bad_extra;
	uint64_t bad_take_again, bad_jti_again, bad_zero_ticket;
	uint64_t answers, notes;
};

static void note(struct selftest *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct selftest *t, const char *fmt, ...)
{
	if (t->notes++ >= 20)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("# ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
}

static int check_no = 0, check_failed = 0;
static void check(bool ok, const char *what)
{
	printf("%sok %d - %s\n", ok ? "" : "not ", ++check_no, what);
	if (!ok)
		check_failed++;
}

static void client_add(struct client *cl, enum req_kind kind, uint32_t item, const char *line)
{
	size_t len = strlen(line);
	if (cl->outlen + len + 1 > cl->outcap) {
		cl->outcap = (cl->outcap + len + 1) * 2;
		cl->out = realloc(cl->out, cl->outcap);
	}
	if (cl->nreqs == cl->reqcap) {
		cl->reqcap = cl->reqcap ? cl->reqcap * 2 : 1024;
		cl->reqs = realloc(cl->reqs, cl->reqcap * sizeof *cl->reqs);
	}
	if (!cl->out || !cl->reqs) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	memcpy(cl->out + cl->outlen, line, len);
	cl->out[cl->outlen + len] = '\n';
	cl->outlen += len + 1;
	cl->reqs[cl->nreqs++] = (struct req){kind, item};
}

/* Builds every connection's request stream; see the checks for why. */
static void plan_requests(struct selftest *t)
{
	char line[128];
	for (uint32_t i = 0; i < N_CODES; i++) {
		struct client *home = &t->clients[i % N_CONNS], *other = &t->clients[(i + 1) % N_CONNS];
		if (i % 100 < N_CONNS) { /* now and then, on every connection */
			secret never;
			once_secret_generate(never);
			snprintf(line, sizeof line, "TAKE %s", never);
			client_add(home, REQ_UNKNOWN, 0, line);
			client_add(home, REQ_BAD, 0, "HELLO there");
		}
		snprintf(line, sizeof line, "TAKE %s", t->codes[i]);
		client_add(home, REQ_TAKE, i, line);
		if (i % 4 == 1)
			client_add(other, REQ_TAKE_RACE, i, line);
		snprintf(line, sizeof line, "JTI %s", t->jtis[i]);
		client_add(home, REQ_JTI, i, line);
		if (i % 4 == 1)
			client_add(other, REQ_JTI_RACE, i, line);
	}
	/* Second half: everything again on the connection that sent it first. */
	for (uint32_t i = 0; i < N_CODES; i++) {
		struct client *home = &t->clients[i % N_CONNS];
		if (i % 4 == 0) {
			snprintf(line, sizeof line, "TAKE %s", t->codes[i]);
			client_add(home, REQ_TAKE_AGAIN, i, line);
		}
		snprintf(line, sizeof line, "JTI %s", t->jtis[i]);
		client_add(home, REQ_JTI_AGAIN, i, line);
	}
}

static once_status status_by_name(const char *name, size_t len)
{
	for (int st = 0; st < ONCE_STATUS_COUNT; st++) {
		const char *n = once_status_name((once_status)st);
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return (once_status)st;
	}
	return ONCE_STATUS_COUNT;
}

/* Checks one answer against the request at the same position. */
static void client_answer(struct client *cl, const char *line)
{
	struct selftest *t = cl->t;
	const char *sp = strchr(line, ' ');
	unsigned long long ticket, durable;
	if (!sp || sscanf(sp, " %llu %llu", &ticket, &durable) != 2) {
		t->bad_transport++;
		note(t, "unparsable answer '%s'", line);
		return;
	}
	once_status st = status_by_name(line, (size_t)(sp - line));
	if (cl->answered >= cl->nreqs) {
		t->bad_extra++;
		note(t, "answer '%s' to no request", line);
		return;
	}
	struct req r = cl->reqs[cl->answered++];
	t->answers++;

	/* The rule: a success or a decided answer goes out only once the
	 * durable position covers its ticket (IO, an error, may go at once). */
	if (ticket > durable && st != ONCE_IO) {
		t->bad_early++;
		note(t, "answer '%s' sent before its ticket was durable", line);
	}
	once_ticket now;
	once_tickets_durable(t->store, &now);
	if (durable < cl->last_durable || durable > now) {
		t->bad_order++;
		note(t, "durable position %llu after %" PRIu64 " (now %" PRIu64 ")", durable,
		     cl->last_durable, now);
	}
	cl->last_durable = durable;
	if (st == ONCE_OK && ticket == 0) {
		t->bad_zero_ticket++;
		note(t, "'%s': a write that succeeded with ticket 0", line);
	}

	switch (r.kind) {
	case REQ_TAKE:
	case REQ_TAKE_RACE:
		if (st == ONCE_OK) {
			t->code_ok[r.item]++;
		} else if (st == ONCE_SPENT || st == ONCE_NOT_FOUND) {
			t->code_lost[r.item]++;
			t->code_spent[r.item] |= st == ONCE_SPENT;
		} else {
			t->code_error[r.item] = true;
			t->bad_answer++;
			note(t, "take of code %u: %s", r.item, line);
		}
		break;
	case REQ_TAKE_AGAIN:
		t->code_spent[r.item] |= st == ONCE_SPENT;
		t->code_error[r.item] |= st != ONCE_SPENT;
		if (st != ONCE_SPENT) {
			t->bad_take_again++;
			note(t, "second take of code %u: %s, not SPENT", r.item, line);
		}
		break;
	case REQ_JTI:
	case REQ_JTI_RACE:
		if (st == ONCE_OK) {
			t->jti_ok[r.item]++;
		} else if (st != ONCE_SPENT) {
			t->bad_answer++;
			note(t, "jti %u: %s", r.item, line);
		}
		break;
	case REQ_JTI_AGAIN:
		if (st != ONCE_SPENT) {
			t->bad_jti_again++;
			note(t, "jti %u again: %s, not SPENT", r.item, line);
		}
		break;
	case REQ_UNKNOWN:
		if (st != ONCE_NOT_FOUND || ticket != 0) {
			t->bad_zero++;
			note(t, "unknown code: %s, not NOT_FOUND 0", line);
		}
		break;
	case REQ_BAD:
		if (st != ONCE_INVALID || ticket != 0) {
			t->bad_zero++;
			note(t, "bad command: %s, not INVALID 0", line);
		}
		break;
	}
}

static void client_closed(uv_handle_t *h)
{
	struct client *cl = (struct client *)h;
	if (--cl->t->clients_open == 0)
		gateway_stop(&cl->t->gw); /* every client done: stop the server */
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct client *cl = (struct client *)h;
	*buf = uv_buf_init(cl->in + cl->inlen, (unsigned)(sizeof cl->in - cl->inlen));
}

static void client_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct client *cl = (struct client *)stream;
	if (nread < 0) {
		if (cl->answered < cl->nreqs) {
			cl->t->bad_transport++;
			note(cl->t, "connection ended (%s) after %zu of %zu answers",
			     uv_strerror((int)nread), cl->answered, cl->nreqs);
		}
		uv_close((uv_handle_t *)stream, client_closed);
		return;
	}
	cl->inlen += (size_t)nread;
	size_t off = 0;
	char *nl;
	while ((nl = memchr(cl->in + off, '\n', cl->inlen - off)) != NULL) {
		*nl = '\0';
		client_answer(cl, cl->in + off);
		off = (size_t)(nl - cl->in) + 1;
	}
	memmove(cl->in, cl->in + off, cl->inlen - off);
	cl->inlen -= off;
	if (cl->inlen == sizeof cl->in) {
		cl->t->bad_transport++;
		note(cl->t, "an answer longer than %zu bytes", sizeof cl->in);
		uv_close((uv_handle_t *)stream, client_closed);
		return;
	}
	if (cl->answered == cl->nreqs)
		uv_close((uv_handle_t *)stream, client_closed); /* all answered */
}

static void client_written(uv_write_t *req, int status)
{
	struct client *cl = req->data;
	if (status < 0) {
		cl->t->bad_transport++;
		note(cl->t, "client write: %s", uv_strerror(status));
	}
}

static void client_connected(uv_connect_t *req, int status)
{
	struct client *cl = req->data;
	if (status < 0) {
		cl->t->bad_transport++;
		note(cl->t, "connect: %s", uv_strerror(status));
		uv_close((uv_handle_t *)&cl->tcp, client_closed);
		return;
	}
	/* Every request at once (pipelined); answers are read as they come. */
	uv_buf_t buf = uv_buf_init(cl->out, (unsigned)cl->outlen);
	cl->write.data = cl;
	uv_write(&cl->write, (uv_stream_t *)&cl->tcp, &buf, 1, client_written);
	uv_read_start((uv_stream_t *)&cl->tcp, client_alloc, client_read);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int selftest(const char *dir_arg)
{
	static struct selftest t_; /* large: not on the stack */
	struct selftest *t = &t_;
	char tmp[4096];
	const char *dir = dir_arg;
	if (!dir) {
		const char *base = getenv("TMPDIR");
		snprintf(tmp, sizeof tmp, "%s/uv_gateway.XXXXXX", base && *base ? base : "/tmp");
		if (!mkdtemp(tmp)) {
			perror("mkdtemp");
			return 1;
		}
		dir = tmp;
	}
	printf("1..%d\n", N_CHECKS);
	printf("# data directory %s\n", dir);

	/* 1. Open, put the codes.  Setup, before the loop runs: the puts are
	 * _async and one blocking once_ticket_wait covers them all (one
	 * fdatasync or a few, instead of one per blocking once_code_put). */
	once_status st = open_store(dir, &t->store);
	bool put_ok = st == ONCE_OK;
	int64_t now = (int64_t)time(NULL);
	once_ticket last = 0;
	for (int i = 0; put_ok && i < N_CODES + N_UNTOUCHED; i++) {
		char family[4 + ONCE_SECRET_LEN + 1];
		once_secret_generate(t->codes[i]);
		once_secret_hash(t->codes[i], ONCE_SECRET_LEN, t->hashes[i]);
		snprintf(family, sizeof family, "fam.%s", t->hashes[i]);
		once_code c = {
			.client_id = "app",
			.subject = "alice",
			.redirect_uri = "https://app.example/cb",
			.family_id = family,
			.expires_at = now + CODE_TTL,
		};
		st = once_code_put_async(t->store, t->hashes[i], ONCE_SECRET_LEN, &c, &last);
		put_ok = st == ONCE_OK && last > 0;
	}
	if (put_ok) {
		st = once_ticket_wait(t->store, last);
		put_ok = st == ONCE_OK;
	}
	for (int i = 0; i < N_JTIS; i++)
		once_secret_generate(t->jtis[i]);
	if (!put_ok)
		printf("# open or put: %s\n", once_status_name(st));
	check(put_ok, "store opened with ONCE_SYNC_ALWAYS, codes put (_async, once_ticket_wait)");
	if (!put_ok)
		return 1;

	/* 2. The gateway and N_CONNS pipelining clients, one loop. */
	uv_loop_t loop;
	uv_loop_init(&loop);
	int port = 0;
	bool up = gateway_start(&t->gw, &loop, t->store, 0, &port) == 0;
	check(up, "gateway listening on 127.0.0.1, polling once_ticket_fd");
	if (!up)
		return 1;
	plan_requests(t);
	size_t total = 0;
	struct sockaddr_in addr;
	uv_ip4_addr("127.0.0.1", port, &addr);
	for (int k = 0; k < N_CONNS; k++) {
		struct client *cl = &t->clients[k];
		cl->t = t;
		total += cl->nreqs;
		uv_tcp_init(&loop, &cl->tcp);
		uv_tcp_nodelay(&cl->tcp, 1);
		cl->connect.data = cl;
		t->clients_open++;
		uv_tcp_connect(&cl->connect, &cl->tcp, (const struct sockaddr *)&addr, client_connected);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	int loop_rc = uv_loop_close(&loop);
	st = once_close(t->store);
	t->store = NULL;

	printf("# %zu requests on %d connections; %" PRIu64 " answers, %" PRIu64
	       " of them waited for the disk; the ticket fd fired %" PRIu64
	       " times; a connection paused %" PRIu64 " times\n",
	       total, N_CONNS, t->answers, t->gw.waited, t->gw.wakeups, t->gw.paused);
	check(t->answers == total && t->bad_transport == 0 && t->bad_extra == 0 && loop_rc == 0,
	      "every request answered, in order, every connection closed cleanly");
	uint64_t once = 0, lost = 0, bad_race = 0;
	for (int i = 0; i < N_CODES; i++) {
		once += t->code_ok[i] == 1;
		lost += t->code_lost[i];
		if (i % 4 == 1 && t->code_lost[i] != 1)
			bad_race++;
	}
	printf("# %" PRIu64 " codes taken once; %" PRIu64 " races lost\n", once, lost);
	check(once == N_CODES && bad_race == 0 && t->bad_answer == 0,
	      "every code taken exactly once (races across connections: one OK, one SPENT/NOT_FOUND)");
	check(t->bad_take_again == 0, "a code taken again on the same connection answers SPENT");
	uint64_t jonce = 0;
	for (int i = 0; i < N_JTIS; i++)
		jonce += t->jti_ok[i] == 1;
	check(jonce == N_JTIS && t->bad_jti_again == 0,
	      "every jti OK exactly once, SPENT when sent again");
	check(t->bad_zero == 0, "unknown code NOT_FOUND and bad command INVALID, ticket 0");
	check(t->bad_early == 0 && t->bad_order == 0 && t->bad_zero_ticket == 0,
	      "no answer sent before its ticket was durable; every OK had a ticket");
	printf("# once_close: %s\n", once_status_name(st));
	check(st == ONCE_OK, "once_close: every ticket durable");

	/* 3. Reopen with the blocking API: every acknowledged effect is there
	 * (in a passing run every request was acknowledged; after a failure,
	 * only what was acknowledged is owed). */
	once_store *s;
	st = open_store(dir, &s);
	if (st != ONCE_OK) {
		printf("# reopen: %s\n", once_status_name(st));
		for (int k = check_no; k < N_CHECKS; k++)
			check(false, "reopen");
		return 1;
	}
	uint64_t bad_revoked = 0, bad_untouched = 0, bad_spent = 0, bad_jti = 0;
	for (int i = 0; i < N_CODES; i++) {
		/* A code answered SPENT had its access token revoked before that
		 * answer; a code never answered SPENT (nor an error) was not. */
		char at[4 + ONCE_SECRET_LEN + 1];
		snprintf(at, sizeof at, "at.%s", t->hashes[i]);
		bool revoked = once_access_token_revoked(s, at, strlen(at));
		if (t->code_ok[i] == 1 && (t->code_spent[i] ? !revoked : !t->code_error[i] && revoked)) {
			bad_revoked++;
			note(t, "code %d: access token revoked=%d after reopen", i, revoked);
		}
	}
	for (int i = N_CODES; i < N_CODES + N_UNTOUCHED; i++) {
		once_code *rec = NULL;
		st = once_code_take(s, t->hashes[i], ONCE_SECRET_LEN, &rec, NULL);
		once_free(rec);
		if (st != ONCE_OK) {
			bad_untouched++;
			note(t, "untouched code %d after reopen: %s", i, once_status_name(st));
		}
	}
	for (int i = 0; i < N_CODES; i++) {
		if (!t->code_ok[i])
			continue; /* never acknowledged */
		once_code_meta *meta = NULL;
		st = once_code_take(s, t->hashes[i], ONCE_SECRET_LEN, NULL, &meta);
		once_free(meta);
		if (st != ONCE_SPENT) {
			bad_spent++;
			note(t, "acknowledged code %d after reopen: %s, not SPENT", i, once_status_name(st));
		}
	}
	for (int i = 0; i < N_JTIS; i++) {
		if (!t->jti_ok[i])
			continue; /* never acknowledged */
		st = once_replay_check(s, t->jtis[i], ONCE_SECRET_LEN, JTI_TTL);
		if (st != ONCE_SPENT) {
			bad_jti++;
			note(t, "acknowledged jti %d after reopen: %s, not SPENT", i, once_status_name(st));
		}
	}
	st = once_close(s);
	check(bad_spent == 0, "after reopen: every acknowledged take is SPENT");
	check(bad_jti == 0, "after reopen: every acknowledged jti is recorded (SPENT)");
	check(bad_revoked == 0 && bad_untouched == 0 && st == ONCE_OK,
	      "after reopen: replayed codes' access tokens revoked, others not; untouched codes takeable");

	for (int k = 0; k < N_CONNS; k++) {
		free(t->clients[k].out);
		free(t->clients[k].reqs);
	}
	if (!dir_arg && check_failed == 0)
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_failed == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "--selftest") == 0 && argc <= 3)
		return selftest(argc == 3 ? argv[2] : NULL);
	if (argc == 2 || argc == 3) {
		int port = argc == 3 ? atoi(argv[2]) : 0;
		if (argv[1][0] != '-' && port >= 0 && port <= 65535)
			return serve(argv[1], port);
	}
	fprintf(stderr, "usage: uv_gateway DIR [PORT]\n       uv_gateway --selftest [DIR]\n");
	return 2;
}
