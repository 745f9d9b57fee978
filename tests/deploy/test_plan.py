from agent.deploy.plan import (
    Instance,
    environment,
    initial_formation,
    instance_spec,
    instances,
    process_command,
    release_phase_spec,
)
from agent.releases import Release, ReleaseState


def release():
    return Release(app="shop", number=4, state=ReleaseState.STARTING, description="d",
                   created_at=0, image="sha256:abc", config={"A": "1"},
                   processes={"web": "gunicorn app", "worker": "python w.py"},
                   release_command="python migrate.py")


def test_web_starts_with_one_and_others_with_none():
    assert initial_formation({"web": "x", "worker": "y"}, {}, {}) == {"web": 1, "worker": 0}


def test_existing_scale_and_app_json_formation_are_kept():
    processes = {"web": "x", "worker": "y", "clock": "z"}
    assert initial_formation(processes, {"web": 3}, {"worker": 2}) == {
        "web": 3, "worker": 2, "clock": 0}


def test_instances_follow_formation_and_known_types():
    result = instances({"web": 2, "worker": 1, "gone": 3}, {"web": "x", "worker": "y"})
    assert result == [Instance("web", 1), Instance("web", 2), Instance("worker", 1)]


def test_every_process_gets_port_and_dyno():
    env = environment({"A": "1", "PORT": "ignored"}, Instance("worker", 2), 5000)
    assert env["PORT"] == "5000" and env["DYNO"] == "worker.2" and env["A"] == "1"


def test_only_web_is_published():
    web = instance_spec(release(), Instance("web", 1), restart_policy="unless-stopped",
                        host_port=23456, container_port=5000, log_max_size="10m",
                        log_max_files=3, generation="abc")
    worker = instance_spec(release(), Instance("worker", 1), restart_policy="unless-stopped",
                           host_port=23457, container_port=5000, log_max_size="10m",
                           log_max_files=3, generation="abc")
    assert web.publish_port == 23456 and worker.publish_port is None
    assert web.labels["berth.app"] == "shop" and web.labels["berth.release"] == "4"
    assert web.command == ("/bin/sh", "-c", "exec gunicorn app")
    assert web.name == "berth-shop-v4-web-1-abc"


def test_empty_command_keeps_image_cmd_and_release_phase_never_restarts():
    assert process_command("") == ()
    assert process_command("a && b") == ("/bin/sh", "-c", "a && b")
    spec = release_phase_spec(release(), container_port=5000)
    assert spec.restart_policy == "no" and spec.labels["berth.role"] == "release"
    assert spec.env["DYNO"] == "release.1"
