/*
 * tls: the server's OpenSSL context. Without a configured certificate, batond uses a
 * self-signed one for the domain, created on first start in the data directory and
 * reused afterwards, so clients can pin it.
 *
 * Invariant: the key file is never readable by others and is written whole or not at
 * all (temp file with O_EXCL, fsync, rename, directory fsync: STYLE.md rule 18).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net.h"
#include "net_int.h"

struct tls_ctx {
	SSL_CTX *ctx;
	bool client;
	char *host; /* client: the name the server's certificate must carry (NULL: checked later) */
};

static const char *
ssl_error(void)
{
	static _Thread_local char msg[256];
	unsigned long e = ERR_get_error();
	if (!e)
		return "unknown error";
	ERR_error_string_n(e, msg, sizeof msg);
	return msg;
}

/* Writes the PEM produced by fn to path atomically; returns 0 or -1 with err. */
static int
write_pem(const char *path, int mode, int (*fn)(FILE *f, void *obj), void *obj, char *err,
	  size_t errlen)
{
	char tmp[4096], dir[4096];
	int fd;
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!fn(f, obj) || fflush(f) != 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s", tmp);
		fclose(f);
		unlink(tmp);
		return -1;
	}
	fclose(f);
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	return 0;
}

static int
pem_key(FILE *f, void *obj)
{
	return PEM_write_PrivateKey(f, obj, NULL, NULL, 0, NULL, NULL);
}

static int
pem_cert(FILE *f, void *obj)
{
	return PEM_write_X509(f, obj);
}

/* Creates a self-signed P-256 certificate for domain and *.domain, valid ten years. */
static int
make_self_signed(const char *cert, const char *key, const char *domain, char *err, size_t errlen)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char san[600];
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	int rc = -1;

	if (!pk || !x)
		goto fail;
	rand_bytes(serial, sizeof serial);
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	X509_set_version(x, 2);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
				   (const unsigned char *)domain, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	snprintf(san, sizeof san, "DNS:%s,DNS:*.%s", domain, domain);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (!ext)
		goto fail;
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, pk, EVP_sha256()))
		goto fail;
	if (write_pem(key, 0600, pem_key, pk, err, errlen) < 0 ||
	    write_pem(cert, 0644, pem_cert, x, err, errlen) < 0)
		goto out;
	log_info("created a self-signed certificate for %s in %s", domain, cert);
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "cannot create a self-signed certificate: %s", ssl_error());
out:
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

/* Loads cert and key into ctx, the self-signed pair of data_dir if both are empty. */
static int
ctx_use_identity(SSL_CTX *ctx, const char *cert, const char *key, const char *data_dir,
		 const char *domain, char *err, size_t errlen)
{
	char certpath[4096], keypath[4096];

	if (!*cert && !*key) {
		snprintf(certpath, sizeof certpath, "%s/cert.pem", data_dir);
		snprintf(keypath, sizeof keypath, "%s/key.pem", data_dir);
		if (access(certpath, R_OK) != 0 || access(keypath, R_OK) != 0) {
			if (make_self_signed(certpath, keypath, domain, err, errlen) < 0)
				return -1;
		}
		cert = certpath;
		key = keypath;
	} else if (!*cert || !*key) {
		snprintf(err, errlen, "server.cert and server.key must be given together");
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "cannot load certificate %s: %s", cert, ssl_error());
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "cannot load private key %s: %s", key, ssl_error());
		return -1;
	}
	return 0;
}

/* Trusts the CAs of ca_file, or the system's if it is empty. */
static int
ctx_load_cas(SSL_CTX *ctx, const char *ca_file, char *err, size_t errlen)
{
	if (ca_file && *ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			snprintf(err, errlen, "cannot load CA file %s: %s", ca_file, ssl_error());
			return -1;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errlen, "cannot load the system's CA certificates: %s", ssl_error());
		return -1;
	}
	return 0;
}

static SSL_CTX *
ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new: %s", ssl_error());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Idle connections should not each keep 34 KiB of OpenSSL buffers (rule 16). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	return ctx;
}

static struct tls_ctx *
tls_wrap(SSL_CTX *ctx, bool client, const char *host)
{
	struct tls_ctx *t = xcalloc(1, sizeof *t);

	t->ctx = ctx;
	t->client = client;
	t->host = host ? xstrdup(host) : NULL;
	return t;
}

struct tls_ctx *
tls_ctx_new(const char *cert, const char *key, const char *data_dir, const char *domain, char *err,
	    size_t errlen)
{
	SSL_CTX *ctx = ctx_new(TLS_server_method(), err, errlen);

	if (!ctx)
		return NULL;
	if (ctx_use_identity(ctx, cert, key, data_dir, domain, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return tls_wrap(ctx, false, NULL);
}

/* The handshake goes on whatever the peer's certificate: the stream judges it afterwards. */
static int
verify_later(int ok, X509_STORE_CTX *x)
{
	return 1;
}

struct tls_ctx *
tls_s2s_ctx_new(const char *cert, const char *key, const char *data_dir, const char *domain,
		const char *ca_file, bool client, char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_new(client ? TLS_client_method() : TLS_server_method(), err, errlen);

	if (!ctx)
		return NULL;
	if (ctx_use_identity(ctx, cert, key, data_dir, domain, err, errlen) < 0 ||
	    ctx_load_cas(ctx, ca_file, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* As server this asks for the peer's certificate (RFC 6120 13.7.2.1, XEP-0178). */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_later);
	return tls_wrap(ctx, client, NULL);
}

bool
tls_peer_ok(void *ssl, const char *domain)
{
	X509 *x;
	bool ok;

	if (!ssl || SSL_get_verify_result(ssl) != X509_V_OK)
		return false;
	x = SSL_get1_peer_certificate(ssl);
	if (!x)
		return false; /* no certificate also reads X509_V_OK */
	/* RFC 6125 6.4: the DNS-ID of the certificate names the domain (wildcards included). */
	ok = X509_check_host(x, domain, 0, 0, NULL) == 1;
	X509_free(x);
	return ok;
}

void
tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t->host);
	free(t);
}

void *
tls_new_ssl(struct tls_ctx *t, int fd, const char *host)
{
	SSL *ssl = SSL_new(t->ctx);

	if (!ssl)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	if (!t->client) {
		SSL_set_accept_state(ssl);
		return ssl;
	}
	/* RFC 6125 6: the reference identity is the name we meant to reach. */
	char *sni = (char *)(host ? host : t->host); /* SSL_ctrl's prototype is not const */
	if ((t->host && SSL_set1_host(ssl, t->host) != 1) ||
	    (sni && SSL_set_tlsext_host_name(ssl, sni) != 1)) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

bool
tls_is_client(const struct tls_ctx *t)
{
	return t->client;
}

const char *
tls_verify_error(void *ssl)
{
	long r = SSL_get_verify_result(ssl);
	return r == X509_V_OK ? NULL : X509_verify_cert_error_string(r);
}

struct tls_ctx *
tls_client_ctx_new(const char *ca_file, const char *host, char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_new(TLS_client_method(), err, errlen);

	if (!ctx)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ctx_load_cas(ctx, ca_file, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return tls_wrap(ctx, true, host);
}
