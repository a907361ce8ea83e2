#!/usr/bin/python3
"""A real MLLP receiver (Debian python3-hl7) for the HL7 result sink tests.

Run with /usr/bin/python3 (the interpreter that sees Debian's packages):

    /usr/bin/python3 oru_receiver.py [PORT]

It listens on 127.0.0.1 (PORT, default a free one) and prints
"LISTENING <port>". For each message it prints "RECEIVED <base64>", the
message block exactly as it arrived, then acknowledges it with python-hl7's
create_ack: AE with an ERR segment (code 207, "flagged AE by the receiver")
when MSH-10 starts with "AE", else AA.
"""

import asyncio
import base64
import sys

import hl7
from hl7.mllp import start_hl7_server


async def serve(reader, writer):
    try:
        while not writer.is_closing():
            block = await reader.readblock()
            print("RECEIVED " + base64.b64encode(block).decode("ascii"), flush=True)
            msg = hl7.parse(block.decode("utf-8"))
            ctrl = str(msg.segment("MSH")(10))
            text = str(msg.create_ack("AE" if ctrl.startswith("AE") else "AA")).rstrip("\r")
            if ctrl.startswith("AE"):
                text += "\rERR|||207^Application internal error^HL70357|E||||flagged AE by the receiver"
            writer.writemessage(hl7.parse(text + "\r"))
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    except Exception as e:  # report, never hang the test
        print("ERROR " + repr(e), flush=True)
    finally:
        writer.close()


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    # A RIS takes reports with PDFs attached: allow blocks of up to 16 MiB
    # (asyncio's default line limit is 64 KiB).
    server = await start_hl7_server(serve, host="127.0.0.1", port=port, encoding="utf-8", limit=16 << 20)
    print("LISTENING %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
