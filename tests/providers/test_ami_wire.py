"""The AMI wire format: blocks split anywhere, both line ends, the banner, bad blocks, actions."""

import pytest

from pipelines.providers.asterisk.ami import Malformed, Message, Parser, UnsafeAction, encode_action, parse_blocks
from tests.providers.amiserver import transcript, wire


def test_every_recorded_transcript_parses_cleanly():
    for name in ("answered-internal.raw", "answered-outbound.raw", "unanswered-cancel.raw", "originate-local.raw"):
        messages = parse_blocks(transcript(name))
        assert messages and all(isinstance(m, Message) and not m.problems for m in messages), name
    first = parse_blocks(transcript("answered-internal.raw"))[0]
    assert (first.kind, first.name, first.get("uniqueid"), first.get("AccountCode")) == \
        ("event", "Newchannel", "1770888534.43", "")


def test_a_stream_cut_into_any_pieces_gives_the_same_messages():
    data = b"Asterisk Call Manager/5.0.1\r\n" + wire(transcript("unanswered-cancel.raw"))
    whole = Parser().feed(data)
    for size in (1, 2, 3, 7, 64, 1000):
        parser = Parser()
        pieces = []
        for i in range(0, len(data), size):
            pieces += parser.feed(data[i:i + size])
        assert pieces == whole, f"cut every {size} bytes"
        assert parser.banner == "Asterisk Call Manager/5.0.1"
    assert len(whole) == 15 and whole[-1].name == "Hangup" and whole[-1].get("Cause-txt") == "Interworking, unspecified"


def test_case_insensitive_keys_cover_asterisk_11_spellings():
    m = parse_blocks("Event: Dial\nSubEvent: Begin\nUniqueID: 1.1\nDestUniqueID: 1.2\n")[0]
    assert m.get("Uniqueid") == "1.1" and m.get("destuniqueid") == "1.2" and "SUBEVENT" in m


def test_bad_lines_are_reported_and_the_block_kept_a_block_without_a_kind_is_malformed():
    out = Parser(banner=False).feed(b"Event: Hangup\r\nUniqueid: 9.1\r\nthis is not a header\r\n\r\n"
                                    b"garbage without colon\r\n\r\n"
                                    b"Foo: bar\r\n\r\n"
                                    b"Event: Newchannel\r\nUniqueid: 9.2\r\n\r\n")
    assert [type(m).__name__ for m in out] == ["Message", "Malformed", "Malformed", "Message"]
    assert out[0].get("Uniqueid") == "9.1" and "line 3" in out[0].problems[0]
    assert out[2].reason == "no Event, Response or Action line"
    assert out[3].get("Uniqueid") == "9.2"


def test_an_endless_block_is_dropped_and_the_stream_recovers():
    parser = Parser(banner=False, max_block=1000)
    out = parser.feed(b"Event: Flood\r\nData: " + b"x" * 5000)
    out += parser.feed(b"y" * 3000 + b"\r\n\r\nEvent: Hangup\r\nUniqueid: 1.5\r\n\r\n")
    assert isinstance(out[0], Malformed) and "longer than 1000" in out[0].reason
    assert [m.get("Uniqueid") for m in out[1:]] == ["1.5"]


def test_a_crlf_split_between_two_reads_is_one_line_end():
    parser = Parser(banner=False)
    assert parser.feed(b"Event: Hangup\r\nUniqueid: 1.1\r\n\r") == []
    assert parser.feed(b"\n")[0].get("Uniqueid") == "1.1"


def test_no_banner_is_fine_and_a_last_block_without_empty_line_is_flushed():
    parser = Parser()
    out = parser.feed(b"Response: Success\r\nActionID: 1\r\n\r\nEvent: X\r\n")
    assert out[0].name == "Success" and parser.banner == ""
    assert parser.flush()[0].name == "X"


def test_actions_go_out_with_crlf_and_refuse_injected_lines():
    assert encode_action({"Action": "Ping", "ActionID": 7}) == b"Action: Ping\r\nActionID: 7\r\n\r\n"
    with pytest.raises(UnsafeAction):
        encode_action({"Action": "Originate", "Exten": "0501234567\r\n\r\nAction: Logoff"})
