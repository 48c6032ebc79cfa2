# gunicorn configuration of the token service: its TLS context.
#
# gunicorn (21 and later) asks this hook for a context for every new connection. Its own
# default loads the key and certificate by path, and OpenSSL opens that path twice (once
# for the chain, once for the key): a renewal that replaces the file between the two opens
# gives a key that does not fit its certificate, and that connection is reset. Here the
# file is opened once and both reads go through that descriptor, so a connection sees the
# old file or the new one, never half of each. The context is kept until the file changes.
# (gunicorn before 21 ignores the hook and keeps its own loading.)
import os
import ssl
import threading

_lock = threading.Lock()
_cached = {"stamp": None, "context": None}


def _load(conf, descriptor):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=conf.ca_certs)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    path = "/proc/self/fd/%d" % descriptor
    context.load_cert_chain(certfile=path, keyfile=path)
    context.verify_mode = conf.cert_reqs
    if conf.ciphers:
        context.set_ciphers(conf.ciphers)
    return context


def ssl_context(conf, default_ssl_context_factory):
    descriptor = os.open(conf.certfile, os.O_RDONLY | os.O_CLOEXEC)
    try:
        status = os.fstat(descriptor)
        stamp = (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)
        with _lock:
            if _cached["stamp"] != stamp:
                _cached["context"] = _load(conf, descriptor)
                _cached["stamp"] = stamp
            return _cached["context"]
    finally:
        os.close(descriptor)
