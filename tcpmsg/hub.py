"""The hub: who is connected, who is registered, which channels exist, and every rule.

Front ends call the hub with plain values; the hub calls back into each user's
``Session`` with events, and into a ``Store`` for what must be kept. Nothing
here knows of sockets, bytes, JSON or threads.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from tcpmsg import errors
from tcpmsg.accounts import Account, hash_password, verify_password
from tcpmsg.channels import EACH_MEMBER, Audience, Channel
from tcpmsg.events import (
    Closed,
    Event,
    Joined,
    Left,
    MessageWaiting,
    PrivateMessage,
    Said,
    UserRef,
)
from tcpmsg.ids import ClientIds
from tcpmsg.rules import (
    check_channel_name,
    check_password,
    check_text,
    check_user_name,
    looks_like_client_id,
)
from tcpmsg.store import InboxPage, Snapshot, Store, StoredChannel

T = TypeVar("T")
DEFAULT_HISTORY = 100


def name_key(name: str) -> str:
    """How a user or channel name is looked up: in NFC, case folded, so that "Zoë"
    typed composed or decomposed, in any case, is one name."""
    return unicodedata.normalize("NFC", name).casefold()


class Session(Protocol):
    """What a front end gives the hub for each connected user.

    A session may also have an ``audience`` (``tcpmsg.channels.Audience``): the
    front end's own way to deliver channel events to all its members at once.
    Without one, channel events come through ``deliver`` like the rest.
    """

    def deliver(self, event: Event) -> None:
        """Pass an event on to the user; must not block and must not raise."""


class Departed:
    """The session of a user who is gone: whatever still reaches it goes nowhere."""

    def deliver(self, event: Event) -> None:
        pass


DEPARTED = Departed()


async def run_here(work: Callable[..., T], *args: Any) -> T:
    """Runs slow work (password hashing) in place; servers pass a thread-pool runner."""
    return work(*args)


class User:
    """A connected user: its session, its channels (by key), whether its name is registered."""

    __slots__ = ("audience", "channels", "ref", "registered", "session")

    def __init__(self, ref: UserRef, session: Session, registered: bool = False) -> None:
        self.ref = ref
        self.session = session
        self.audience: Audience = getattr(session, "audience", EACH_MEMBER)
        self.registered = registered
        self.channels: dict[str, Channel] = {}

    @property
    def id(self) -> int:
        return self.ref.id

    @property
    def name(self) -> str:
        return self.ref.name


class Hub:
    """The registry of users, accounts and channels, and the operations on them."""

    def __init__(
        self,
        store: Store,
        snapshot: Snapshot = Snapshot(),  # noqa: B008 - immutable
        clock: Callable[[], float] = time.time,
        ids: ClientIds | None = None,
        history_limit: int = DEFAULT_HISTORY,
        run_slow: Callable[..., Awaitable[Any]] = run_here,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ids = ids or ClientIds()
        self._history_limit = history_limit
        self._run_slow = run_slow
        self._users: dict[int, User] = {}
        self._names: dict[str, User] = {}
        self._accounts: dict[str, Account] = {}
        self._account_ids: dict[int, Account] = {}
        self._channels: dict[str, Channel] = {}
        for account in snapshot.accounts:
            self._add_account(account)
        for kept in snapshot.channels:
            channel = Channel(kept.name, kept.owner, history_limit, kept=True, history=kept.history)
            self._channels[channel.key] = channel

    # Presence

    async def connect(self, name: str, session: Session, password: str | None = None) -> User:
        """A new user; a registered name needs its password and gets its own client id."""
        user = self.connect_guest(name, session)
        if user is not None:
            return user
        account = self._accounts[name_key(name)]
        if password is None:
            raise errors.PasswordRequired(f"{account.name} is registered: give its password")
        if not await self._run_slow(verify_password, password, account.password_hash):
            raise errors.BadPassword(f"that is not the password of {account.name}")
        self._check_free(account.name)
        return self._enter(UserRef(account.client_id, account.name), session, registered=True)

    def connect_guest(self, name: str, session: Session) -> User | None:
        """A new user under a name nobody registered, at once; None if it is registered."""
        name = check_user_name(unicodedata.normalize("NFC", name))
        self._check_free(name)
        if name.casefold() in self._accounts:
            return None
        return self._enter(UserRef(self._ids.allocate(), name), session, registered=False)

    def _enter(self, ref: UserRef, session: Session, registered: bool) -> User:
        user = User(ref, session, registered=registered)
        self._users[ref.id] = user
        self._names[ref.name.casefold()] = user
        return user

    def _check_free(self, name: str) -> None:
        user = self._names.get(name.casefold())
        if user is None:
            return
        if user.registered:
            # Its owner, most likely, from another connection: "choose another" would mislead.
            raise errors.NameTaken(f"{user.name} is signed in already, on another connection")
        raise errors.NameTaken(f"the name {name!r} is taken; choose another")

    def disconnect(self, user: User, reason: str = "disconnected") -> None:
        """Remove every trace of a connection; a registered user's inbox and id stay."""
        user_id = user.ref.id
        if self._users.get(user_id) is not user:
            return
        del self._users[user_id]
        del self._names[user.ref.name.casefold()]
        # An account being written for this user (register still waiting on the store)
        # keeps its id and inbox as a registered one does.
        if not user.registered and user_id not in self._account_ids:
            self._store.discard_messages(user_id)
            self._ids.release(user_id)
        for channel in list(user.channels.values()):
            if channel.owner.id == user_id and not channel.kept:
                self._close(channel, "owner_left")
            else:
                self._remove_member(channel, user, reason)
        # The session and its user refer to each other; letting go here frees both
        # when the connection goes, without waiting for the garbage collector.
        user.session = DEPARTED
        user.audience = EACH_MEMBER

    def users(self) -> list[UserRef]:
        return [user.ref for user in self._users.values()]

    def find_user(self, who: int | str) -> User:
        """A connected user by client id, or by name (case-insensitive)."""
        user = self._lookup(who, self._users, self._names)
        if user is None:
            raise errors.UnknownUser(f"no user {errors.quoted(who)} is connected")
        return user

    def _recipient(self, who: int | str) -> UserRef:
        """A connected user, or a registered one who may be offline."""
        user = self._lookup(who, self._users, self._names)
        if user is not None:
            return user.ref
        account = self._lookup(who, self._account_ids, self._accounts)
        if account is None:
            raise errors.UnknownUser(f"no user {errors.quoted(who)} is connected or registered")
        return UserRef(account.client_id, account.name)

    @staticmethod
    def _lookup(who: int | str, by_id: dict[int, T], by_name: dict[str, T]) -> T | None:
        if isinstance(who, str) and looks_like_client_id(who):
            who = int(who)
        if isinstance(who, int):
            return by_id.get(who)
        return by_name.get(name_key(who))

    # Accounts

    async def register(self, user: User, password: str) -> Account:
        """Give the user's name an owner: from now on it takes this password, and keeps its id."""
        check_password(password)
        if user.registered or user.name.casefold() in self._accounts:
            raise errors.AlreadyRegistered(f"{user.name} is registered already")
        password_hash = await self._run_slow(hash_password, password)
        if self._users.get(user.id) is not user:
            # Gone while the password was hashed: its name may be someone else's by now.
            raise errors.UnknownUser(f"{user.name} disconnected before registering")
        account = Account(user.id, user.name, password_hash)
        if account.key in self._accounts:
            raise errors.AlreadyRegistered(f"{user.name} is registered already")
        self._add_account(account)
        try:
            await self._store.add_account(account)
        except Exception:
            del self._accounts[account.key], self._account_ids[account.client_id]
            if user.id not in self._users:
                # Gone meanwhile, and no account after all: an unregistered user's end.
                self._store.discard_messages(user.id)
                self._ids.release(user.id)
            raise
        user.registered = True
        for channel in user.channels.values():
            if channel.owner.id == user.id:
                channel.kept = True
                self._store.save_channel(StoredChannel(channel.name, channel.owner))
                # A kept channel comes back with its history: what was said before, too.
                for said in channel.history:
                    self._store.record_said(said)
        return account

    def _add_account(self, account: Account) -> None:
        self._accounts[account.key] = account
        self._account_ids[account.client_id] = account
        self._ids.reserve(account.client_id)

    # Private messages

    async def send_message(self, sender: User, to: int | str, text: str) -> UserRef:
        """Keep a message for its recipient, then tell the recipient if it is connected."""
        [sent] = await self.send_messages(sender, [(to, text)])
        if isinstance(sent, errors.TcpmsgError):
            raise sent
        return sent

    async def send_messages(
        self, sender: User, wanted: list[tuple[int | str, str]]
    ) -> list[UserRef | errors.TcpmsgError]:
        """Keep several messages from one sender in one store request (a client's
        pipelined sends), then tell each recipient that is connected. Each message
        comes back as its recipient, or as the error that refused it."""
        sent: list[UserRef | errors.TcpmsgError] = []
        kept: list[PrivateMessage] = []
        # A batch often writes to one user many times: each recipient is looked up once.
        found: dict[int | str, UserRef] = {}
        now = self._clock()
        for to, text in wanted:
            try:
                check_text(text)
                recipient = found.get(to)
                if recipient is None:
                    recipient = found[to] = self._recipient(to)
            except errors.TcpmsgError as error:
                sent.append(error)
                continue
            sent.append(recipient)
            kept.append(PrivateMessage(recipient.id, sender.ref, text, now))
        counts = iter(await self._store.put_messages(kept) if kept else ())
        gone: set[int] = set()
        told: dict[User, int] = {}
        for n, recipient in enumerate(sent):
            if not isinstance(recipient, UserRef):
                continue
            unread = next(counts)
            user = self._users.get(recipient.id)
            # The same user still, or one who signed in as the offline recipient meanwhile
            # (identity first: comparing two refs runs Python code, and most are the same).
            if user is not None and (user.ref is recipient or user.ref == recipient):
                told[user] = unread
            elif recipient.id not in self._account_ids:
                # Unregistered and gone while the store worked: its inbox went with it.
                gone.add(recipient.id)
                sent[n] = errors.UnknownUser(
                    f"{recipient.name} disconnected before the message was kept"
                )
        for user, unread in told.items():
            # One event a recipient for the batch, with the count after its last message.
            user.session.deliver(MessageWaiting(sender.ref, unread))
        for recipient_id in gone:
            self._store.discard_messages(recipient_id)
        return sent

    async def read_messages(self, user: User, limit: int) -> InboxPage:
        """The user's oldest ``limit`` messages not yet acknowledged; a front end reads an
        inbox in pages, and a message stays until its reader says it has it (``ack``):
        one whose reply never reached the reader comes again."""
        return await self._store.read_messages(user.id, limit)

    async def ack_messages(self, user: User, upto: int) -> int:
        """The user has its messages numbered ``upto`` and before: they go. How many wait."""
        return await self._store.ack_messages(user.id, upto)

    async def count_messages(self, user: User) -> int:
        return await self._store.count_messages(user.id)

    # Channels

    def channels(self) -> list[Channel]:
        return list(self._channels.values())

    def channel(self, name: str) -> Channel:
        channel = self._channels.get(name_key(name))
        if channel is None:
            raise errors.NoSuchChannel(f"there is no channel {errors.quoted(name)}")
        return channel

    def create_channel(self, user: User, name: str) -> Channel:
        name = check_channel_name(unicodedata.normalize("NFC", name))
        if name.casefold() in self._channels:
            raise errors.ChannelExists(f"the channel {name!r} exists already")
        channel = Channel(name, user.ref, self._history_limit, kept=user.registered)
        self._channels[channel.key] = channel
        self._add_member(channel, user)
        if channel.kept:
            self._store.save_channel(StoredChannel(channel.name, channel.owner))
        return channel

    def join(self, user: User, name: str) -> Channel:
        channel = self.channel(name)
        if user.id in channel.members:
            raise errors.AlreadyMember(f"you are in {channel.name!r} already")
        channel.publish(Joined(channel.name, user.ref))
        self._add_member(channel, user)
        return channel

    def leave(self, user: User, name: str) -> Channel:
        """Leave a channel; the owner leaving a channel that is not kept closes it."""
        channel = self._membership(user, name)
        if channel.owner.id == user.id and not channel.kept:
            self._close(channel, "owner_left")
        else:
            self._remove_member(channel, user, "left")
        return channel

    def say(self, user: User, name: str, text: str) -> Said:
        check_text(text)
        channel = self._membership(user, name)
        event = Said(channel.name, user.ref, text, self._clock())
        channel.history.append(event)
        channel.publish(event, skip=user)
        if channel.kept:
            self._store.record_said(event)
        return event

    def close(self, user: User, name: str) -> Channel:
        channel = self.channel(name)
        if channel.owner.id != user.id:
            raise errors.NotOwner(
                f"only {channel.owner.name} who created {channel.name!r} can close it"
            )
        self._close(channel, "closed")
        return channel

    def _membership(self, user: User, name: str) -> Channel:
        channel = self.channel(name)
        if user.id not in channel.members:
            raise errors.NotMember(f"you are not in {channel.name!r}")
        return channel

    def _add_member(self, channel: Channel, user: User) -> None:
        channel.add(user)
        user.channels[channel.key] = channel

    def _remove_member(self, channel: Channel, user: User, reason: str) -> None:
        channel.remove(user)
        del user.channels[channel.key]
        channel.publish(Left(channel.name, user.ref, reason))

    def _close(self, channel: Channel, reason: str) -> None:
        del self._channels[channel.key]
        for member in channel.members.values():
            del member.channels[channel.key]
        owner = channel.members.get(channel.owner.id)
        channel.publish(Closed(channel.name, channel.owner, reason), skip=owner)
        channel.end()
        if channel.kept:
            self._store.drop_channel(channel.name)
