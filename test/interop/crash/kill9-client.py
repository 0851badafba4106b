"""
One cycle of the kill -9 test (test/interop/crash/kill-9.test.ts), as a real
NBD client (python3-libnbd):

1. verify what the restarted server serves against the model: every
   destination block written before an acknowledged FLUSH (or with FUA) reads
   back one of the values it may hold; the server's x-nbd-remapper:written
   context says which blocks recovery kept a write of (they read one of
   their writes from then on) and which lost all of them (only blocks with no
   durable write may; they read their home's content, which may change);
   every source block reads its original, or EIO where the guarantees allow
   it — never destination data;
2. run a copier-like workload (read source, write destination, FLUSH, FUA,
   re-reads, overwrites; a checkpoint after each flush in --safe mode) until
   the server dies under it;
3. save the model and exit 0.

Blocks carry tags: a block's 4096 bytes are its tag as a signed 64-bit
integer, repeated. Originals are tagged -(p+1) for disk block p; destination
writes get positive tags. So any block read can be decoded and judged.

argv: SOURCE_URI DEST_URI CONTROL_SOCKET MODEL_JSON SEED MODE(safe|fast) VERIFY_ONLY(0|1)
"""
import errno
import json
import os
import random
import socket
import struct
import sys

import nbd

B = 4096
source_uri, dest_uri, control, model_path, seed, mode, verify_only = sys.argv[1:8]
rng = random.Random(int(seed))
safe = mode == "safe"


def block_of(tag):
    return struct.pack("<q", tag) * (B // 8)


def tag_of(data):
    first = data[:8]
    if data != first * (B // 8):
        return None  # not a whole tagged block: torn or foreign data
    return struct.unpack("<q", first)[0]


def errno_of(e):
    return e.errno if isinstance(e.errno, int) else getattr(errno, str(e.errno), None)


def control_post(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(control)
    s.sendall(("POST %s HTTP/1.0\r\nContent-Length: 0\r\n\r\n" % path).encode())
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    if not reply.startswith(b"HTTP/"):
        raise RuntimeError("control %s: no answer (the server died)" % path)
    status = int(reply.split(b" ", 2)[1])
    if status != 200:
        raise RuntimeError("control %s answered %d: %s" % (path, status, reply[-400:]))


with open(model_path) as f:
    model = json.load(f)
# dest block (str) -> list of tags it may hold: the durable one first, then any written since the last barrier
possible = model["possible"]
released = set(model["released"])    # source blocks read (their originals may go)
confirmed = set(model["confirmed"])  # released blocks a checkpoint confirmed
next_tag = model["nextTag"]
stats = model["stats"]
disk_blocks = model["diskBlocks"]
dest_blocks = model["destBlocks"]
home_shift = model["homeShift"]  # destination block d lives on disk block d + home_shift
copy_from = model.get("copyFrom", 0)  # the copier copies source block copy_from + d to destination block d


def save():
    model.update(possible=possible, released=sorted(released), confirmed=sorted(confirmed), nextTag=next_tag, stats=stats)
    tmp = model_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(model, f)
    os.replace(tmp, model_path)


src = nbd.NBD()
src.set_strict_mode(0)
dst = nbd.NBD()
dst.set_strict_mode(0)
WRITTEN_CONTEXT = "x-nbd-remapper:written"
dst.add_meta_context(WRITTEN_CONTEXT)
src.connect_uri(source_uri)
dst.connect_uri(dest_uri)

# 1. verify
UNWRITTEN = "unwritten"  # a first write not yet made durable: the block may still read as never written


def is_written(d):
    """What the server's x-nbd-remapper:written context says of destination block d."""
    found = []

    def answer(metacontext, offset, entries, err):
        if metacontext == WRITTEN_CONTEXT and entries:
            found.append(entries[1])
        return 0

    dst.block_status(B, d * B, answer, nbd.CMD_FLAG_REQ_ONE)
    assert found, "destination block %d: no %s answer" % (d, WRITTEN_CONTEXT)
    return found[0] & 1 != 0


def may_hold(d, tags, got):
    if got in tags:
        return True
    # Never written, it reads its home's current content: the original, or a spill slot's data.
    return UNWRITTEN in tags and got is not None and (got == -(d + home_shift + 1) or got > 0)


for key, tags in possible.items():
    d = int(key)
    got = tag_of(dst.pread(B, d * B))
    if is_written(d):
        # Recovery kept one of its writes: that is what it reads from now on.
        assert got in tags, "destination block %d reads %r, expected one of %r" % (d, got, tags)
        possible[key] = [got]
    else:
        # Every write to it was lost, which only a block with no durable write may suffer. It is unwritten
        # again: it reads its home's current content (even its own lost write, if that reached the disk
        # before its record), and the home may later serve as a slot for another block's data.
        assert tags[0] == UNWRITTEN, "destination block %d has a durable write (%r) but reads as never written" % (d, tags)
        assert may_hold(d, [UNWRITTEN], got), "unwritten destination block %d reads %r" % (d, got)
        possible[key] = [UNWRITTEN]
        if len(tags) > 1:  # it had writes before this kill: the kill lost them all
            stats["lostWrites"] = stats.get("lostWrites", 0) + 1
            if got in tags:
                stats["lostWriteReadBack"] = stats.get("lostWriteReadBack", 0) + 1
    stats["destChecked"] += 1
# Reading a source block releases it, so verify the blocks read before plus a few never read (which join them).
unread = [p for p in range(disk_blocks) if p not in released]
sample = sorted(released) + rng.sample(unread, min(8, len(unread)))
for p in sample:
    was_released = p in released
    released.add(p)
    try:
        got = tag_of(src.pread(B, p * B))
    except nbd.Error as e:
        assert errno_of(e) == errno.EIO, "source block %d: %s" % (p, e)
        assert was_released, "source block %d was never read, yet its original is gone (EIO)" % p
        if safe:
            assert p in confirmed, "--safe: source block %d is not confirmed by a checkpoint, yet its original is gone" % p
        stats["sourceEio"] += 1
        continue
    assert got == -(p + 1), "source block %d reads tag %r: not its original (destination data is %s)" % (p, got, "positive tags")
    stats["sourceChecked"] += 1
save()
if verify_only == "1":
    print("verified", json.dumps(stats))
    sys.exit(0)

# 2. workload, until the server is killed under it
print("WORKING", flush=True)
pending = set()  # destination blocks written since the last barrier
cursor = model.get("cursor", 0)


def barrier_done(blocks):
    for d in blocks:
        key = str(d)
        possible[key] = [possible[key][-1]]


try:
    for step in range(100000):
        op = rng.random()
        if op < 0.45:
            # the copier: read the next source block, write it to the destination block it belongs to
            if cursor < dest_blocks:
                p = cursor  # copying source block copy_from + p to destination block p (home p + home_shift)
                src.pread(B, (copy_from + p) * B)
                released.add(copy_from + p)
                tag = next_tag
                next_tag += 1
                key = str(p)
                # In the model before it is sent: a write the server dies under may or may not have happened.
                possible.setdefault(key, [UNWRITTEN]).append(tag)
                pending.add(p)
                try:
                    dst.pwrite(block_of(tag), p * B)
                except nbd.Error as e:
                    if errno_of(e) != errno.ENOSPC:
                        raise
                    possible[key].pop()  # refused: nothing was written
                    if possible[key] == [UNWRITTEN]:
                        del possible[key]
                        pending.discard(p)
                    stats["enospc"] += 1
                    continue
                cursor += 1
                model["cursor"] = cursor
        elif op < 0.65 and possible:
            # overwrite a block written earlier, sometimes with FUA
            d = int(rng.choice(list(possible.keys())))
            tag = next_tag
            next_tag += 1
            fua = rng.random() < 0.3
            possible[str(d)].append(tag)
            pending.add(d)
            try:
                dst.pwrite(block_of(tag), d * B, nbd.CMD_FLAG_FUA if fua else 0)
            except nbd.Error as e:
                if errno_of(e) != errno.ENOSPC:
                    raise
                possible[str(d)].pop()
                stats["enospc"] += 1
                continue
            if fua:
                # FUA: this write is durable when acknowledged, whatever came before it.
                possible[str(d)] = [tag]
                pending.discard(d)
                stats["fua"] += 1
        elif op < 0.80 and released:
            # a filesystem revisiting metadata: re-read a source block read before
            p = rng.choice(list(released))
            try:
                got = tag_of(src.pread(B, p * B))
                assert got == -(p + 1), "source re-read of block %d gave tag %r" % (p, got)
            except nbd.Error as e:
                if errno_of(e) != errno.EIO:
                    raise  # the server died under the read
                assert not (safe and p not in confirmed), "--safe: unconfirmed source block %d lost its original" % p
        elif op < 0.92:
            d = rng.randrange(dest_blocks)
            got = tag_of(dst.pread(B, d * B))
            if str(d) in possible:
                last = possible[str(d)][-1]
                if last == UNWRITTEN:
                    assert may_hold(d, [UNWRITTEN], got), "unwritten destination block %d reads %r" % (d, got)
                else:
                    assert got == last, "destination block %d reads %r, last written %r" % (d, got, last)
                    assert is_written(d), "destination block %d was written (%r) but the server reports it never written" % (d, last)
        else:
            dst.flush()
            barrier_done(pending)
            pending.clear()
            stats["flushes"] += 1
            if safe:
                try:
                    control_post("/checkpoint")
                except (OSError, RuntimeError):
                    # Unanswered: it may have been committed, so its blocks may be gone as confirmed ones.
                    confirmed |= released
                    raise
                confirmed |= released
                stats["checkpoints"] += 1
except (nbd.Error, OSError, RuntimeError) as e:
    # The server died under us (SIGKILL): everything since the last barrier stays uncertain.
    stats["interrupted"] += 1
save()
print("workload", json.dumps(stats))
