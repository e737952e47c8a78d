"""Redis connection factory: one server, or a Redis Cluster (``LEARNREC_REDIS_CLUSTER``)."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.cluster import ClusterNode, RedisCluster

from learnrec.shared.config import Settings
from learnrec.shared.redis_keys import RedisKeys


def redis_security(settings: Settings) -> dict[str, object]:
    """Client options for credentials and TLS: the ACL user and password when set (a password in
    the URL wins), the CA for a ``rediss://`` URL when set."""
    options: dict[str, object] = {}
    if settings.connection.redis_username:
        options["username"] = settings.connection.redis_username
    if settings.connection.redis_password.get_secret_value():
        options["password"] = settings.connection.redis_password.get_secret_value()
    if settings.connection.redis_ssl_ca_certs:
        if not settings.connection.redis_url.startswith("rediss://"):
            raise ValueError("LEARNREC_REDIS_SSL_CA_CERTS needs a rediss:// URL (TLS)")
        options["ssl_ca_certs"] = settings.connection.redis_ssl_ca_certs
    return options


def make_redis(settings: Settings) -> redis.Redis:
    """A client on ``settings.connection.redis_url`` returning raw bytes (vectors are stored as bytes).

    The timeouts are short because Redis is on the request path of serving: a slow Redis should
    fail a request, not hang it. With ``redis_cluster`` the URL is any node of a Redis Cluster
    and the client (redis-py's ``RedisCluster``, the same commands) sends each command to the
    master of its key's slot, following the cluster through a failover.
    """
    options = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0, "health_check_interval": 30,
               **redis_security(settings)}
    if settings.connection.redis_cluster:
        nodes = [ClusterNode(host, port) for host, port in cluster_nodes(settings)]
        return RedisCluster.from_url(settings.connection.redis_url, startup_nodes=nodes, **options)  # type: ignore[return-value]
    return redis.Redis.from_url(settings.connection.redis_url, **options)


def cluster_nodes(settings: Settings) -> list[tuple[str, int]]:
    """The (host, port) of ``redis_cluster_nodes``: the cluster's nodes besides ``REDIS_URL``'s."""
    nodes = []
    for entry in filter(None, (part.strip() for part in settings.connection.redis_cluster_nodes.split(","))):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"LEARNREC_REDIS_CLUSTER_NODES: {entry!r} is not host:port")
        nodes.append((host, int(port)))
    return nodes


def make_async_redis(settings: Settings, timeout_s: float) -> aioredis.Redis:
    """An asyncio client on the same server or cluster as :func:`make_redis`, with ``timeout_s``
    for connecting and for every reply."""
    options = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, **redis_security(settings)}
    if settings.connection.redis_cluster:
        nodes = [AsyncClusterNode(host, port) for host, port in cluster_nodes(settings)]
        return aioredis.RedisCluster.from_url(settings.connection.redis_url, startup_nodes=nodes,  # type: ignore[return-value]
                                              **options)
    return aioredis.Redis.from_url(settings.connection.redis_url, **options)


class ReplicasBehind(redis.RedisError):
    """Writes that a master acknowledged have not reached its replicas in time (the master may
    have no replica left after a failover): the caller must not treat them as durable yet."""


def wait_for_replicas(client: redis.Redis, key: str, replicas: int, timeout_ms: int) -> None:
    """A replication barrier: returns once every write made so far to the master of ``key``'s
    slot (by any connection) is on ``replicas`` of its replicas; raises :class:`ReplicasBehind`
    after ``timeout_ms``.

    Redis replicates asynchronously: a master that dies right after a write may take it along,
    and its promoted replica never saw it. ``WAIT`` counts from its own connection's last write,
    and a master has one replication stream, so one increment of ``key`` followed by ``WAIT`` on
    the same connection covers every earlier write to that master.
    """
    cluster = isinstance(client, RedisCluster)
    node = client.get_redis_connection(client.get_node_from_key(key)) if cluster else client
    try:
        with node.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.execute_command("WAIT", replicas, timeout_ms)
            _, acknowledged = pipe.execute()
    except (redis.ConnectionError, redis.TimeoutError):
        if cluster:  # the slot's master is gone (a failover): the next call asks the cluster anew
            client.nodes_manager.initialize()
        raise
    if acknowledged < replicas:
        raise ReplicasBehind(f"{acknowledged} of {replicas} replicas acknowledged the writes within {timeout_ms} ms")


class ReplicationBarrier:
    """``barrier()`` waits (:func:`wait_for_replicas`) on a Redis Cluster when
    ``redis_wait_replicas`` > 0, and does nothing on a single server."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._key = RedisKeys.from_settings(settings).replicated()
        connection = settings.connection
        self.replicas = connection.redis_wait_replicas if connection.redis_cluster else 0
        self._timeout_ms = connection.redis_wait_timeout_ms

    def __call__(self) -> None:
        if self.replicas:
            wait_for_replicas(self._client, self._key, self.replicas, self._timeout_ms)


def redis_answers(url: str) -> bool:
    """True when a Redis server at ``url`` answers PING."""
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except Exception:
        return False
