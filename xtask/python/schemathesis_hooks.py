"""What schemathesis needs to be told about this API beyond its OpenAPI
document (the fuzz step of `cargo xtask test`; see schemathesis.toml)."""

import requests.adapters

import schemathesis

# app/src/booking/catalog.rs: MAX_SEATS, the seats one event may have.
MAX_SEATS = 100_000


@schemathesis.hook.apply_to(method="POST", path="/api/v1/admin/events")
def map_case(context, case):
    """Rules of a new event that JSON Schema cannot state, applied to the
    bodies generated as valid: at most MAX_SEATS seats (rows x
    seats_per_row, a product of two fields), and each seat listed once
    (section, row and number together, whatever the price tier)."""
    body = case.body
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(body, dict):
        return case
    seat_map = body.get("seat_map")
    if isinstance(seat_map, dict):
        rows, per_row = seat_map.get("rows"), seat_map.get("seats_per_row")
        if _whole(rows) and _whole(per_row) and rows >= 1 and rows * per_row > MAX_SEATS:
            seat_map["seats_per_row"] = int(MAX_SEATS // rows)
    seats = body.get("seats")
    if isinstance(seats, list):
        seen, once = set(), []
        for seat in seats:
            if isinstance(seat, dict):
                number = seat.get("number")
                key = repr((seat.get("section"), seat.get("row"), int(number) if _whole(number) else number))
                if key in seen:
                    continue
                seen.add(key)
            once.append(seat)
        body["seats"] = once
    return case


def _whole(n):
    return isinstance(n, (int, float)) and not isinstance(n, bool) and float(n).is_integer()


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
