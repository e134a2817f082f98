"""The notifications socket at its edges: frames outside the protocol, origins, sockets per user."""

import logging

import pytest

from tests.test_notifications_live import connect, make_user, run_async

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_BAD_FRAME = 4400  # notifications.consumers
MAX_FRAME = 4096

BAD_FRAMES = {
    "not JSON": {"text_data": "hello?"},
    "truncated JSON": {"text_data": '{"type": "hello", "last_id": '},
    "binary frame": {"bytes_data": b'{"type": "ping"}'},
    "deeply nested JSON": {"text_data": "[" * 3000 + "]" * 3000},
    "nested under a key": {"text_data": '{"type": "ping", "x": {"y": {"z": 1}}}'},
    "too long": {"text_data": '{"type": "ping", "pad": "' + "x" * MAX_FRAME + '"}'},
    "a JSON list": {"text_data": '[{"type": "ping"}]'},
    "a JSON number": {"text_data": "12"},
    "no type": {"text_data": '{"last_id": 3}'},
    "a non-string type": {"text_data": '{"type": ["hello"]}'},
    "NaN": {"text_data": '{"type": "hello", "last_id": NaN}'},
    "negative last id": {"text_data": '{"type": "hello", "last_id": -1}'},
    "fractional last id": {"text_data": '{"type": "hello", "last_id": 2.5}'},
    "text last id": {"text_data": '{"type": "hello", "last_id": "7"}'},
    "boolean last id": {"text_data": '{"type": "hello", "last_id": true}'},
    "last id beyond a bigint": {"text_data": '{"type": "hello", "last_id": 9223372036854775808}'},
    "huge last id": {"text_data": '{"type": "hello", "last_id": 1' + "0" * 4000 + "}"},
}


@pytest.mark.parametrize("frame", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_a_frame_outside_the_protocol_closes_the_socket_with_4400_and_no_traceback(frame, caplog):
    @run_async
    async def scenario():
        communicator, connected, _ = await connect(await make_user())
        assert connected
        await communicator.send_to(**frame)
        # Before: the consumer raised (json.loads, its binary-frame ValueError, RecursionError) and
        # the communicator re-raises what the application raised; daphne logged it and closed 1011.
        assert await communicator.receive_output(timeout=3) == {
            "type": "websocket.close",
            "code": CLOSE_BAD_FRAME,
        }
        await communicator.disconnect()

    with caplog.at_level(logging.INFO):
        scenario()
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING or record.exc_info]
    assert any("bad frame" in record.getMessage() for record in caplog.records)


def test_the_protocol_still_works_and_ignores_unknown_types():
    @run_async
    async def scenario():
        communicator, connected, _ = await connect(await make_user())
        assert connected
        await communicator.send_json_to({"type": "from-a-newer-page"})
        await communicator.send_json_to({"type": "hello", "last_id": None})
        await communicator.send_json_to({"type": "hello", "last_id": 0})
        await communicator.send_json_to({"type": "ping"})
        assert await communicator.receive_json_from(timeout=3) == {"type": "pong"}
        await communicator.disconnect()

    scenario()
