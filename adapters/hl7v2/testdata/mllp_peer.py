#!/usr/bin/python3
"""A real MLLP receiver for radgate's hl7v2 tests, on Debian's python3-hl7.

Run with /usr/bin/python3 (the interpreter that sees Debian's packages):

    /usr/bin/python3 mllp_peer.py

It listens on 127.0.0.1 on a free port and prints "LISTENING <port>". For
each message it prints one JSON line, "RECEIVED {...}", with what
python-hl7 read from it (control id, type, PID-3, OBR fields, every OBX with
its value unescaped by python-hl7), then acknowledges it:

  - MSH-10 starting with "AE": AE with an ERR segment (code 207);
  - MSH-10 starting with "BUSY": AR with an ERR segment (code 207: try later);
  - MSH-10 starting with "AR": AR with an ERR segment (code 200);
  - MSH-10 starting with "SILENT": no answer at all;
  - anything else: AA.
"""

import asyncio
import json
import sys

import hl7
from hl7.mllp import start_hl7_server


def field(segment, n):
    try:
        return str(segment(n))
    except (IndexError, KeyError):
        return ""


def summary(msg):
    msh = msg.segment("MSH")
    out = {
        "control_id": field(msh, 10),
        "type": field(msh, 9),
        "version": field(msh, 12),
        "segments": [str(s(0)) for s in msg],
    }
    try:
        pid = msg.segment("PID")
        out["pid3"] = field(pid, 3)
        out["pid5"] = field(pid, 5)
    except KeyError:
        pass
    try:
        obr = msg.segment("OBR")
        out["obr"] = {str(n): msg.unescape(field(obr, n)) for n in (2, 3, 4, 18, 20, 25)}
    except KeyError:
        pass
    out["obx"] = [
        {
            "type": field(obx, 2),
            "id": field(obx, 3),
            "value": msg.unescape(field(obx, 5)),
            "units": field(obx, 6),
            "status": field(obx, 11),
        }
        for obx in msg
        if str(obx(0)) == "OBX"
    ]
    out["nte"] = [msg.unescape(field(s, 3)) for s in msg if str(s(0)) == "NTE"]
    return out


def ack(msg, code, err=None):
    text = str(msg.create_ack(code)).rstrip("\r")
    if err is not None:
        text += "\rERR|||%s^%s^HL70357|E||||%s" % err
    return hl7.parse(text + "\r")


async def serve(reader, writer):
    try:
        while not writer.is_closing():
            msg = await reader.readmessage()
            info = summary(msg)
            print("RECEIVED " + json.dumps(info), flush=True)
            ctrl = info["control_id"]
            if ctrl.startswith("SILENT"):
                continue
            if ctrl.startswith("AE"):
                reply = ack(msg, "AE", ("207", "Application internal error", "flagged AE by the test"))
            elif ctrl.startswith("BUSY"):
                reply = ack(msg, "AR", ("207", "Application internal error", "flagged busy by the test"))
            elif ctrl.startswith("AR"):
                reply = ack(msg, "AR", ("200", "Unsupported message type", "flagged AR by the test"))
            else:
                reply = ack(msg, "AA")
            writer.writemessage(reply)
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    except Exception as e:  # report, never hang the test
        print("ERROR " + repr(e), flush=True)
    finally:
        writer.close()


async def main():
    server = await start_hl7_server(serve, host="127.0.0.1", port=0, encoding="utf-8")
    port = server.sockets[0].getsockname()[1]
    print("LISTENING %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
