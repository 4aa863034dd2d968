"""A synthetic city's events, as COPY text rows for the platform's `events` table.

    city = City.build(seed=1)                         # 7,024 buildings, their tenants and cards
    for chunk in city.copy_rows(total=20_000_000, days=180, end=END, sealer=sealer): ...

The mix (stated in docs/benchmarks.md with the figures):

- 7,024 buildings in 9 districts × 8 streets × 10 communities, each with one gateway; how busy
  a building is varies (log-normal, σ 0.8), and so does its number of tenants (10–400, about
  98 on average: 690,000 residents).
- 97 % entries (`access.*`): 95 % of them granted; denials are unknown cards (60 %, no tenant,
  no room) or expired, lost or suspended cards of tenants. Within a building a few cards are
  busy and most rare: a tenant's card is drawn with Zipf weights 1/rank^1.2.
- 3 % door and reader events (held open, forced, reader offline/online): no card, no result.
- `tenant.changed` for 5 % of tenants (registrations on the gateway's page), sealed with the
  store key and found by ID-number hash, as the platform stores them.
- 70 % of entries name a snapshot. Times follow a day's shape (morning and evening peaks) in
  +08:00; rows are in time order across the city, as arrival interleaves them; each gateway's
  seq counts up in its own time order.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from rental_platform.store.sealing import Sealer
from web_security.id_numbers import id_check_char

ZONE = timezone(timedelta(hours=8))
DISTRICTS = ("440303", "440304", "440305", "440306", "440307", "440308", "440309", "440310",
             "440311")  # fmt: skip
BUILDINGS = 7024
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"


@dataclass(slots=True)
class Tenant:
    tenant_id: str
    card: int
    room: str
    name: str
    id_number: str | None  # only for those registered on the gateway's page


@dataclass(slots=True)
class Building:
    index: int
    district: str
    street: str
    community: str
    number: str
    weight: float
    tenants: list[Tenant]
    cumulative: list[float]  # Zipf weights of the tenants' cards, cumulated
    gateway_id: str = ""

    def __post_init__(self) -> None:
        self.gateway_id = f"gw-{self.district}-{self.index:05d}"

    @property
    def code(self) -> str:
        return f"{self.district}{self.street}{self.community}-{self.number}"


def id_number(rng: random.Random, district: str) -> str:
    born = datetime(1950, 1, 1) + timedelta(days=rng.randrange(20000))
    first17 = f"{district}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return first17 + id_check_char(first17)


class City:
    """The buildings, tenants and cards; `copy_rows` makes the events."""

    def __init__(self, buildings: list[Building], rng: random.Random) -> None:
        self.buildings = buildings
        self.rng = rng

    @classmethod
    def build(cls, seed: int = 1) -> City:
        rng = random.Random(seed)
        buildings = []
        card = 1_000_000
        for index in range(BUILDINGS):
            district = DISTRICTS[index % len(DISTRICTS)]
            street = f"{index // len(DISTRICTS) % 8 + 1:03d}"
            community = f"{index // (len(DISTRICTS) * 8) % 10 + 1:03d}"
            weight = rng.lognormvariate(0, 0.8)
            tenants = []
            for k in range(max(10, min(400, round(80 * weight)))):
                card += 1 + rng.randrange(3)
                registered = rng.random() < 0.05
                tenants.append(Tenant(
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)), card,
                    f"{k // 6 + 1}{k % 6 + 1:02d}",
                    rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2))),
                    id_number(rng, district) if registered else None,
                ))  # fmt: skip
            ranks = list(range(1, len(tenants) + 1))
            rng.shuffle(ranks)  # which tenant is busy has nothing to do with its room
            cumulative, total = [], 0.0
            for rank in ranks:
                total += 1 / rank**1.2
                cumulative.append(total)
            buildings.append(Building(index, district, street, community,
                                      f"{index // (len(DISTRICTS) * 80) + 1:04d}", weight,
                                      tenants, cumulative))  # fmt: skip
        return cls(buildings, rng)

    def busiest_card(self, building: Building) -> Tenant:
        steps = [
            b - a for a, b in zip([0.0, *building.cumulative], building.cumulative, strict=False)
        ]
        return building.tenants[steps.index(max(steps))]

    def copy_rows(self, *, total: int, days: int, end: datetime, sealer: Sealer) -> Iterator[str]:
        """COPY text for `total` events over the `days` before `end`, about a day per chunk."""
        rng = self.rng
        weights = [b.weight for b in self.buildings]
        scale = total / days / sum(weights)
        seqs = [0] * len(self.buildings)
        start = end - timedelta(days=days)
        registrations: dict[int, list[tuple[Building, Tenant]]] = {}
        for building in self.buildings:
            for tenant in building.tenants:
                if tenant.id_number is not None:
                    registrations.setdefault(rng.randrange(days), []).append((building, tenant))
        made = 0
        for day in range(days):
            base = (start + timedelta(days=day)).timestamp()
            want = total - made if day == days - 1 else None
            stamps: list[tuple[float, int]] = []
            for building in self.buildings:
                count = _poisson(rng, building.weight * scale)
                stamps.extend((base + _time_of_day(rng), building.index) for _ in range(count))
            if want is not None:
                stamps = stamps[:want] if len(stamps) >= want else stamps + [
                    (base + _time_of_day(rng), rng.randrange(len(self.buildings)))
                    for _ in range(want - len(stamps))]  # fmt: skip
            changes = [(base + rng.random() * 86400, -1 - i) for i, _ in
                       enumerate(registrations.get(day, []))]  # fmt: skip
            lines = []
            for ts, who in sorted(stamps + changes):
                if who < 0:
                    building, tenant = registrations[day][-1 - who]
                    seqs[building.index] += 1
                    seq = seqs[building.index]
                    lines.append(self._tenant_changed(building, tenant, seq, ts, sealer))
                    continue
                building = self.buildings[who]
                seqs[who] += 1
                lines.append(self._event(building, seqs[who], ts))
                made += 1
            yield "".join(lines)

    def _event(self, b: Building, seq: int, ts: float) -> str:
        # The JSON written out directly (every value here is plain ASCII or digits): json.dumps
        # per row was the load's bottleneck. Key order and spacing as compact json.dumps.
        rng = self.rng
        roll = rng.random()
        gateway_id = b.gateway_id
        event_id = _uuid4(rng)
        stamp = datetime.fromtimestamp(ts, ZONE).isoformat(timespec="milliseconds")
        head = (f'{{"schema":1,"gateway_id":"{gateway_id}","seq":{seq},'
                f'"event_id":"{event_id}","ts":"{stamp}"')  # fmt: skip
        card = tenant_id = room = result = reason = sha = None
        door = "main" if rng.random() < 0.8 else "north"
        if roll < 0.03:
            kind = rng.choice(("door.held_open", "door.forced", "reader.offline", "reader.online"))
            text = f'{head},"type":"{kind}","door":"{door}"}}'
        else:
            tenant = b.tenants[bisect.bisect(b.cumulative, rng.random() * b.cumulative[-1])]
            result = "granted" if roll < 0.03 + 0.97 * 0.95 else "denied"
            kind = f"access.{result}"
            if result == "denied" and rng.random() < 0.6:
                card, reason = rng.randrange(1, 2**32), "unknown_card"
            else:
                card, tenant_id, room = tenant.card, tenant.tenant_id, tenant.room
                reason = "tenant_card" if result == "granted" else rng.choice(
                    ("expired", "lost_card", "suspended"))  # fmt: skip
            text = (f'{head},"type":"{kind}","door":"{door}",'
                    f'"credential":{{"kind":"card","number":{card}}}')  # fmt: skip
            if tenant_id is not None:
                text += f',"tenant_id":"{tenant_id}","room":"{room}"'
            text += f',"reason":"{reason}"'
            if rng.random() < 0.7:
                sha = f"{rng.getrandbits(256):064x}"
                text += f',"snapshot":{{"sha256":"{sha}","bytes":{rng.randrange(25000, 60000)}}}}}'
            else:
                text += ',"snapshot":null,"snapshot_error":"camera_offline"}'
        return _line(b, seq, event_id, kind, ts, door, card, tenant_id, room,
                     result, reason, None, sha, text, None)  # fmt: skip

    def _tenant_changed(self, b: Building, t: Tenant, seq: int, ts: float, sealer: Sealer) -> str:
        event_id = _uuid4(self.rng)
        stamp = datetime.fromtimestamp(ts, ZONE).isoformat(timespec="milliseconds")
        tenant = {"id": t.tenant_id, "name": t.name, "id_number": t.id_number,
                  "phone": f"138{self.rng.randrange(10**8):08d}", "room": t.room,
                  "valid_from": "2026-01-01", "valid_until": "2026-12-31", "status": "active",
                  "cards": [{"number": t.card, "status": "active"}]}  # fmt: skip
        body = {"schema": 1, "gateway_id": b.gateway_id, "seq": seq, "event_id": event_id,
                "ts": stamp, "type": "tenant.changed", "change": "added",
                "tenant": tenant}  # fmt: skip
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = sealer.seal(payload, f"events\0{b.gateway_id}\0{seq}")
        id_hash = sealer.id_number_hash(t.id_number or "")
        return _line(b, seq, event_id, "tenant.changed", ts, None, None, t.tenant_id, t.room,
                     None, None, id_hash, None, None, sealed)  # fmt: skip


def _line(b: Building, seq: int, event_id: str, kind: str, ts: float, door: str | None,
          card: int | None, tenant_id: str | None, room: str | None, result: str | None,
          reason: str | None, id_hash: bytes | None, sha: str | None, body: str | None,
          sealed: bytes | None) -> str:  # fmt: skip
    """One row of COPY text in `EVENT_COLUMNS` order (store/ingest.py)."""
    digest = f"\\\\x{random.getrandbits(256):064x}"
    cells = (b.gateway_id, seq, event_id, kind, ts, ts + 0.2, ts + 0.3, b.district, b.street,
             b.community, b.number, door, card, tenant_id, room, result, reason,
             _bytea(id_hash), sha, digest, body, _bytea(sealed))  # fmt: skip
    return "\t".join([r"\N" if c is None else str(c) for c in cells]) + "\n"


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _bytea(value: bytes | None) -> str | None:
    return None if value is None else "\\\\x" + value.hex()


def _time_of_day(rng: random.Random) -> float:
    """Seconds into a day (+08:00): peaks at 08:00 and 19:00, a floor all day."""
    roll = rng.random()
    if roll < 0.3:
        return rng.random() * 86400
    hour = rng.gauss(8 if roll < 0.6 else 19, 1.5)
    return ((hour - 8) % 24) * 3600  # the day starts at 00:00 UTC = 08:00 here


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


END = datetime(2026, 7, 1, tzinfo=UTC)
