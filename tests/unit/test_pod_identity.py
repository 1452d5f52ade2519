"""Which pod this is, from the Downward API's variables: valid values kept, anything else left out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from raypod.pod_identity import PodIdentity

UID = "0b6c9a52-3d0e-4a53-9a57-2f3c1d6e9b10"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_downward_apis_values_are_read() -> None:
    identity = PodIdentity.from_environ(
        {"POD_NAME": "job-a-ray-pod", "POD_UID": UID, "NODE_NAME": "node-1.example", "TRACEPARENT": TRACEPARENT}
    )
    assert identity == PodIdentity("job-a-ray-pod", UID, "node-1.example", TRACEPARENT)


IN_POD = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}


def test_in_a_pod_the_name_falls_back_to_its_hostname() -> None:
    assert PodIdentity.from_environ({**IN_POD, "HOSTNAME": "job-a-ray-pod"}).name == "job-a-ray-pod"
    assert PodIdentity.from_environ({**IN_POD, "POD_NAME": "named", "HOSTNAME": "host"}).name == "named"


def test_outside_a_pod_the_hostname_names_no_pod() -> None:
    # A laptop's or a CI container's hostname: no job is traced to it.
    assert PodIdentity.from_environ({"HOSTNAME": "laptop"}) == PodIdentity()
    assert PodIdentity.from_environ({"POD_NAME": "named", "HOSTNAME": "laptop"}).name == "named"


def test_nothing_given_is_nothing_known() -> None:
    assert PodIdentity.from_environ({}) == PodIdentity()


def test_malformed_values_are_left_out() -> None:
    identity = PodIdentity.from_environ(
        {
            "POD_NAME": "Not A Name\n",
            "POD_UID": "not-a-uid",
            "NODE_NAME": "x" * 300,
            "TRACEPARENT": "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        }
    )
    assert identity == PodIdentity()


VARIABLES = ["POD_NAME", "POD_UID", "NODE_NAME", "TRACEPARENT", "HOSTNAME", "KUBERNETES_SERVICE_HOST"]


@given(st.dictionaries(st.sampled_from(VARIABLES), st.text()))
def test_every_value_kept_is_printable_and_short(environ: dict[str, str]) -> None:
    identity = PodIdentity.from_environ(environ)
    for value in (identity.name, identity.uid, identity.node, identity.traceparent):
        assert len(value) <= 253
        assert value.isprintable()
        assert value == value.strip()
