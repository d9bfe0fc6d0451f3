# The server check's launcher: serves the profile's app, in the service's
# own interpreter, however the app is made. ARGV: SPEC HOST PORT, where SPEC
# is `module:attr` (an ASGI or a WSGI app) or `module:factory()` (called
# once for the app). uvicorn serves it when the interpreter has uvicorn (a
# WSGI app through its WSGI interface); otherwise the standard library's
# WSGI server serves a WSGI app, and an ASGI app cannot be served.
import asyncio
import importlib
import inspect
import os
import sys

spec, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
module_name, _, attribute = spec.partition(":")
factory = attribute.endswith("()")
attribute = attribute[:-2] if factory else attribute
sys.path.insert(0, os.getcwd())
made = getattr(importlib.import_module(module_name), attribute)
app = made() if factory else made


def is_asgi(app):
    if inspect.isclass(app):
        return True
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    return asyncio.iscoroutinefunction(call)


asgi = is_asgi(app)
try:
    import uvicorn
except ImportError:
    uvicorn = None

if uvicorn is not None:
    interface = "asgi3" if asgi else "wsgi"
    uvicorn.run(app, host=host, port=port, interface=interface, access_log=False)
elif not asgi:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server(host, port, app, handler_class=Quiet)
    print(f"serving {spec} (WSGI) with the standard library's server on {host}:{port}", flush=True)
    print("Application startup complete.", flush=True)
    server.serve_forever()
else:
    sys.exit(f"{spec} is an ASGI app and this interpreter has no uvicorn to serve it: install uvicorn in it")
