"""The registration-write rules of upsert_many, as a pure plan.

Ownership, revival of invalidated registrations, token moves, expiry and
reserved ids are decided here, once, for every store: the batch is replayed
item by item against the rows it could touch, so duplicates, moved tokens and
reserved ids resolve exactly as sequential RegisterDevice calls would. A SQL
store applies the plan with a fixed number of set-based statements; the
in-memory store (store/memory) applies it to its dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .errors import PushHubError, not_device_owner, registration_gone
from .ids import new_ids
from .models import Platform, RegistrationInput, TokenKey


@dataclass(frozen=True)
class StoredRow:
    """The columns of an existing registration that planning needs."""

    id: str
    platform: Platform
    token_hash: str
    fingerprint: str
    expires_at: int | None
    created_at: int
    updated_at: int
    user_id: str | None
    # Set when a provider reported the token invalid (MessageRepository.record_chunk).
    invalidated: bool

    @property
    def key(self) -> TokenKey:
        return (self.platform, self.token_hash)

    @property
    def owner(self) -> str | None:
        """None for an invalidated row too: a dead registration is nobody's to keep,
        so no device key is refused it (NOT_DEVICE_OWNER)."""
        return None if self.invalidated else self.user_id

    @property
    def live_fingerprint(self) -> str:
        """An invalidated row matches no item's fingerprint: re-registering its token
        rewrites it, which revives it, instead of answering "unchanged"."""
        return "" if self.invalidated else self.fingerprint


@dataclass
class Slot:
    """A registration as it stands after the items replayed so far."""

    id: str
    key: TokenKey
    item: RegistrationInput
    fingerprint: str
    stored: StoredRow | None
    # The stored row must drop its key first, so no two rows hold it mid-update.
    moved: bool = False

    @property
    def changed(self) -> bool:
        return self.stored is None or self.stored.live_fingerprint != self.fingerprint

    def answered_times(self, now: int) -> tuple[int, int]:
        """created_at and updated_at (epoch microseconds) an item's answer names: a
        new registration was made now; a stored one keeps its creation, and its
        last update unless this item changed it."""
        if self.stored is None:
            return now, now
        return self.stored.created_at, now if self.changed else self.stored.updated_at


@dataclass(frozen=True)
class ItemOutcome:
    slot: Slot
    # The item applied: its caller is answered with its own content, never with
    # that of a later item of the batch that wrote the same registration. When a
    # later item took its token, the slot has left Plan.live and the registration
    # is gone; the item is still answered as its own call would have been (two
    # reserved ids on one token: the first is created, then removed), naming no
    # subscription, as none of the slot's stands.
    item: RegistrationInput
    unchanged: bool


@dataclass
class Plan:
    outcomes: list[ItemOutcome | PushHubError] = field(default_factory=list)
    live: dict[str, Slot] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    consumed_reservations: set[str] = field(default_factory=set)

    @property
    def inserts(self) -> list[Slot]:
        return [slot for slot in self.live.values() if slot.stored is None]

    @property
    def updates(self) -> list[Slot]:
        return [slot for slot in self.live.values() if slot.stored is not None and slot.changed]

    @property
    def stored_ids(self) -> list[str]:
        """Pre-existing registrations in the results: their subscriptions are read back."""
        return [slot.id for slot in self.live.values() if slot.stored is not None]


def plan_upsert(
    items: Sequence[RegistrationInput],
    keys: Sequence[TokenKey],
    stored: Iterable[StoredRow],
    reserved: set[str],
    now: int,
) -> Plan:
    """keys[i] is items[i].token_key, computed once by the caller for its lookups too."""
    # Ids for every item that may create a registration, ascending, in one call.
    fresh_ids = iter(new_ids(len(items)))
    planner = _Planner(stored, reserved, now, fresh_ids)
    for item, key in zip(items, keys, strict=True):
        planner.apply(item, key)
    return planner.plan


class _Planner:
    def __init__(
        self, stored: Iterable[StoredRow], reserved: set[str], now: int, fresh_ids: Iterator[str]
    ) -> None:
        self.plan = Plan()
        self._fresh_ids = fresh_ids
        self._by_key: dict[TokenKey, str] = {}
        # Stored live rows no item has touched yet; touched ones move to plan.live.
        self._untouched: dict[str, StoredRow] = {}
        # Expired rows count as gone, but still hold their key until deleted.
        self._expired_by_key: dict[TokenKey, str] = {}
        self._reserved = set(reserved)
        for row in stored:
            if row.expires_at is not None and row.expires_at <= now:
                self._expired_by_key[row.key] = row.id
            else:
                self._by_key[row.key] = row.id
                self._untouched[row.id] = row

    def apply(self, item: RegistrationInput, key: TokenKey) -> None:
        refusal = self._refusal(item, key)
        if refusal is not None:
            self.plan.outcomes.append(refusal)
        elif item.registration_id is None:
            self._upsert_by_token(item, key)
        else:
            self._update_by_id(item, item.registration_id, key)

    def _refusal(self, item: RegistrationInput, key: TokenKey) -> PushHubError | None:
        """A device key may not change the registration it names, nor take the token
        from the one holding it, when that belongs to another user. Checked here, in
        the write's transaction, so no concurrent write slips between check and write."""
        actor = item.device_actor
        if actor is None:
            return None
        for target in (item.registration_id, self._by_key.get(key)):
            if target is not None and not actor.may_take(self._owner(target)):
                return not_device_owner(target)
        return None

    def _owner(self, registration_id: str) -> str | None:
        """The user of a registration as replayed so far; None when it has none or is gone."""
        slot = self.plan.live.get(registration_id)
        if slot is not None:
            return slot.item.user_id
        row = self._untouched.get(registration_id)
        return row.owner if row is not None else None

    def _upsert_by_token(self, item: RegistrationInput, key: TokenKey) -> None:
        registration_id = self._by_key.get(key)
        if registration_id is None:
            self._create(item, next(self._fresh_ids), key)
        else:
            self._replace(registration_id, item, key)

    def _update_by_id(self, item: RegistrationInput, registration_id: str, key: TokenKey) -> None:
        if registration_id in self.plan.live or registration_id in self._untouched:
            self._replace(registration_id, item, key)
        elif registration_id in self._reserved:
            self._reserved.discard(registration_id)
            self.plan.consumed_reservations.add(registration_id)
            self._create(item, registration_id, key)
        else:
            self.plan.outcomes.append(registration_gone(registration_id))

    def _create(self, item: RegistrationInput, registration_id: str, key: TokenKey) -> None:
        self._free(key)
        slot = Slot(registration_id, key, item, item.fingerprint, None)
        self.plan.live[registration_id] = slot
        self._by_key[key] = registration_id
        self.plan.outcomes.append(ItemOutcome(slot, item, unchanged=False))

    def _replace(self, registration_id: str, item: RegistrationInput, key: TokenKey) -> None:
        slot = self._touch(registration_id, item)
        if slot.key != key:
            # The token moved to this registration: whoever held it loses it.
            self._free(key)
            del self._by_key[slot.key]
            self._by_key[key] = slot.id
            slot.key = key
            slot.moved = True
        fingerprint = item.fingerprint
        unchanged = slot.stored is not None and fingerprint == slot.fingerprint
        slot.item, slot.fingerprint = item, fingerprint
        self.plan.outcomes.append(ItemOutcome(slot, item, unchanged))

    def _touch(self, registration_id: str, item: RegistrationInput) -> Slot:
        """The live slot of a registration; a stored row keeps its own fingerprint."""
        row = self._untouched.pop(registration_id, None)
        if row is None:
            return self.plan.live[registration_id]
        slot = Slot(row.id, row.key, item, row.live_fingerprint, row)
        self.plan.live[row.id] = slot
        return slot

    def _free(self, key: TokenKey) -> None:
        expired_id = self._expired_by_key.pop(key, None)
        if expired_id is not None:
            self.plan.deleted.add(expired_id)
        holder = self._by_key.pop(key, None)
        if holder is None:
            return
        slot = self.plan.live.pop(holder, None)
        stored = self._untouched.pop(holder, None) or (slot.stored if slot else None)
        if stored is not None:
            self.plan.deleted.add(holder)
