#!/usr/bin/env python3
"""Send N corpus messages to an SMTP server over C concurrent connections (one transaction
after another on each connection) and report the acceptance rate.
    smtp_load.py HOST PORT N C RCPT FILE...
"""
import smtplib, sys, threading, time

host, port, n, c, rcpt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
msgs = [open(f, 'rb').read() for f in sys.argv[6:]]
lock = threading.Lock()
state = {'next': 0, 'ok': 0, 'fail': 0}
latencies = []

def worker():
    s = smtplib.SMTP(host, port, timeout=120)
    s.ehlo('load.test')
    while True:
        with lock:
            i = state['next']
            if i >= n:
                break
            state['next'] += 1
        m = msgs[i % len(msgs)]
        try:
            t0 = time.perf_counter()
            s.sendmail('sender@example.org', [rcpt], b'X-Load-Seq: %d\r\n' % i + m)
            dt0 = time.perf_counter() - t0
            with lock:
                state['ok'] += 1
                latencies.append(dt0)
        except smtplib.SMTPException as e:
            with lock:
                state['fail'] += 1
            print('send failed:', e, file=sys.stderr)
            s = smtplib.SMTP(host, port, timeout=120)
            s.ehlo('load.test')
    s.quit()

t = time.time()
threads = [threading.Thread(target=worker) for _ in range(c)]
for th in threads: th.start()
for th in threads: th.join()
dt = time.time() - t
lat = sorted(latencies) or [0.0]
med, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
print(f"sent {state['ok']} ok, {state['fail']} failed in {dt:.2f} s ({state['ok']/dt:.0f} messages/s accepted); "
      f"SMTP transaction median {med*1000:.1f} ms, p99 {p99*1000:.1f} ms")
sys.exit(1 if state['fail'] else 0)
