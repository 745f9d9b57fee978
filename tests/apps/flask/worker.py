"""A background process type: prints a heartbeat until told to stop."""

import signal
import sys
import time

running = True


def stop(signum: int, frame: object) -> None:
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
while running:
    print("worker heartbeat", flush=True)
    time.sleep(2)
sys.exit(0)
