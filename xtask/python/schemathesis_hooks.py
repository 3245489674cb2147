"""What schemathesis needs to be told about this API beyond its OpenAPI
document (the fuzz step of `cargo xtask test`; see schemathesis.toml)."""

import requests.adapters

# After a WebSocket handshake (101) the socket speaks WebSocket, but the
# HTTP client would put it back in its pool and read the next answer from
# it (frames such as {"type":"admitted",...}). Close it instead: the
# server then ends the socket as a client that went away.
_build_response = requests.adapters.HTTPAdapter.build_response


def _close_upgraded(self, req, resp):
    if resp.status == 101 and resp.connection is not None:
        resp.connection.close()
    return _build_response(self, req, resp)


requests.adapters.HTTPAdapter.build_response = _close_upgraded
