"""Persistence: skmissvae.save/load (no unpickling), pickle and joblib, across processes."""

from __future__ import annotations

import io
import pathlib
import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.exceptions import NotFittedError

import skmissvae
from skmissvae import DeMissVAEImputer, MixtureVAEImputer, VAEEnsembleImputer
from skmissvae._persistence import FORMAT_VERSION
from skmissvae.core.likelihoods import SCALE_FLOOR


from _helpers import FAST_PARAMS, correlated_table

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: Tiny settings of each estimator, as plain values (the cross-process test sends them).
PARAMS = {
    "MixtureVAEImputer": {**FAST_PARAMS, "n_components": 2, "n_particles": 4, "random_state": 0},
    "DeMissVAEImputer": {**FAST_PARAMS, "max_iter": 2, "n_imputations": 2, "lair_iterations": 2,
                         "n_transform_sweeps": 1, "random_state": 0},
}
CLASSES = {"MixtureVAEImputer": MixtureVAEImputer, "DeMissVAEImputer": DeMissVAEImputer}


def _factory(name):
    return lambda **kw: CLASSES[name](**{**PARAMS[name], **kw})


ESTIMATORS = {"mixture": _factory("MixtureVAEImputer"), "demissvae": _factory("DeMissVAEImputer")}


@pytest.fixture(params=sorted(ESTIMATORS))
def make(request):
    return ESTIMATORS[request.param]


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view({4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


def outputs(imputer, X):
    return (
        np.asarray(imputer.transform(X)),
        imputer.score_samples(X),
        imputer.sample_imputations(X, n_imputations=2),
    )


def assert_same_params(a, b):
    """Equal parameter dicts, NaN equal to NaN (``missing_values=np.nan`` loads as a new float)."""
    assert a.keys() == b.keys()
    for key in a:
        same_nan = isinstance(a[key], float) and isinstance(b[key], float) and np.isnan(a[key]) and np.isnan(b[key])
        assert same_nan or a[key] == b[key], key


def assert_same_outputs(a, b, X):
    for left, right in zip(outputs(a, X), outputs(b, X)):
        assert_array_equal(bits(left), bits(right))


# --------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_frame", [False, True])
def test_save_load_round_trip_reproduces_outputs(make, tmp_path, as_frame):
    _, X = correlated_table(60)
    X[:, 3] = np.nan  # an empty column: empty_features_ must survive the round trip
    if as_frame:
        X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    imputer = make().fit(X)
    path = tmp_path / "imputer.pt"
    skmissvae.save(imputer, path)
    loaded = skmissvae.load(path)

    assert type(loaded) is type(imputer)
    assert_same_params(loaded.get_params(), imputer.get_params())
    assert_array_equal(loaded.empty_features_, [False, False, False, True])
    assert_array_equal(loaded.mean_, imputer.mean_)
    assert loaded.loss_curve_ == imputer.loss_curve_
    assert loaded.device_ == imputer.device_
    if as_frame:
        assert_array_equal(loaded.feature_names_in_, imputer.feature_names_in_)
        pd.testing.assert_frame_equal(loaded.transform(X), imputer.transform(X))
    assert_same_outputs(loaded, imputer, X)


@pytest.mark.parametrize("as_frame", [False, True])
def test_ensemble_round_trip_reproduces_outputs(make, tmp_path, as_frame):
    _, X = correlated_table(60)
    X[:, 3] = np.nan  # an empty column: each member's empty_features_ must survive
    if as_frame:
        X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    ensemble = VAEEnsembleImputer(make(), n_estimators=2, random_state=0).fit(X)
    skmissvae.save(ensemble, tmp_path / "ensemble.pt")
    loaded = skmissvae.load(tmp_path / "ensemble.pt")
    assert isinstance(loaded, VAEEnsembleImputer)
    assert {k: v for k, v in loaded.get_params(deep=False).items() if k != "estimator"} == {
        k: v for k, v in ensemble.get_params(deep=False).items() if k != "estimator"
    }
    assert type(loaded.estimator) is type(ensemble.estimator)
    assert_same_params(loaded.estimator.get_params(), ensemble.estimator.get_params())
    assert [type(m) for m in loaded.estimators_] == [type(m) for m in ensemble.estimators_]
    assert_same_outputs(ensemble, loaded, X)
    if as_frame:
        assert list(loaded.feature_names_in_) == ["a", "b", "c", "d"]


def test_ensemble_without_template_round_trips(tmp_path):
    # estimator=None (MixtureVAEImputer() members) is stored as None; refit with tiny
    # members by hand so that the test stays fast.
    _, X = correlated_table(40)
    ensemble = VAEEnsembleImputer(ESTIMATORS["mixture"](), n_estimators=2, random_state=0).fit(X)
    ensemble.set_params(estimator=None)
    skmissvae.save(ensemble, tmp_path / "ensemble.pt")
    loaded = skmissvae.load(tmp_path / "ensemble.pt")
    assert loaded.estimator is None
    assert_same_outputs(ensemble, loaded, X)


@pytest.mark.parametrize("damage", ["no members", "no template"])
def test_damaged_ensemble_file_is_refused_clearly(tmp_path, damage):
    _, X = correlated_table(40)
    ensemble = VAEEnsembleImputer(ESTIMATORS["mixture"](), n_estimators=2, random_state=0).fit(X)
    path = tmp_path / "ensemble.pt"
    skmissvae.save(ensemble, path)
    state = torch.load(path, weights_only=True)
    assert tuple(state["format_version"]) == FORMAT_VERSION
    if damage == "no members":
        state["members"] = []
    else:
        del state["template"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="incomplete or damaged skmissvae save file"):
        skmissvae.load(path)


def test_save_file_loads_with_weights_only(make, tmp_path):
    imputer = make().fit(correlated_table(40)[1])
    path = tmp_path / "imputer.pt"
    skmissvae.save(imputer, path)
    state = torch.load(path, weights_only=True)
    assert state["library_version"] == skmissvae.__version__
    assert tuple(state["format_version"]) == FORMAT_VERSION
    assert state["estimator"] == type(imputer).__name__
    assert set(state["fitted_model"]["model_state"]) == set(imputer.model_.state_dict())


def test_save_keeps_random_state_instance_and_drops_callbacks(tmp_path):
    X = correlated_table(40)[1]
    imputer = ESTIMATORS["mixture"](random_state=np.random.RandomState(3), callbacks=[lambda est, info: None])
    imputer.fit(X)
    with pytest.warns(UserWarning, match="callbacks"):
        skmissvae.save(imputer, tmp_path / "f.pt")
    loaded = skmissvae.load(tmp_path / "f.pt")
    assert loaded.callbacks is None
    assert isinstance(loaded.random_state, np.random.RandomState)
    assert_array_equal(loaded.random_state.get_state()[1], imputer.random_state.get_state()[1])
    assert_same_outputs(loaded, imputer, X)


def test_save_refuses_unfitted_and_foreign_estimators(tmp_path):
    with pytest.raises(NotFittedError):
        skmissvae.save(ESTIMATORS["mixture"](), tmp_path / "f.pt")
    from sklearn.impute import SimpleImputer

    with pytest.raises(TypeError, match="MixtureVAEImputer or DeMissVAEImputer, or a VAEEnsembleImputer"):
        skmissvae.save(SimpleImputer().fit([[1.0]]), tmp_path / "f.pt")


class _Payload:
    """Unpickling this touches a marker file: proof that code from a file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_load_refuses_pickled_code(tmp_path, writer):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    payload = {"magic": "skmissvae-estimator", "format_version": list(FORMAT_VERSION), "x": _Payload(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))  # the payload is live
    assert (tmp_path / "control").exists()
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        skmissvae.load(path)
    assert not marker.exists()


DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize("name", ["mixture_format_1_1", "demissvae_format_1_1", "ensemble_format_1_2"])
def test_files_of_earlier_formats_still_load(name, tmp_path):
    # Written by the library before the fitted model was stored whole (formats 1.1, 1.2).
    X = np.load(DATA / "format_fixture_X.npy")
    old = torch.load(DATA / f"{name}.pt", weights_only=True)
    loaded = skmissvae.load(DATA / f"{name}.pt")
    members = loaded.estimators_ if isinstance(loaded, VAEEnsembleImputer) else [loaded]
    states = [m for m in old["members"]] if "members" in old else [old]
    for member, state in zip(members, states):
        for key, weights in state["model_state"].items():
            assert torch.equal(member.model_.state_dict()[key], weights)
        assert_array_equal(member.mean_, state["attributes"]["mean_"]["value"].numpy())
        assert_array_equal(member.scale_, state["attributes"]["scale_"]["value"].numpy())
    Xt = loaded.transform(X)
    observed = ~np.isnan(X)
    assert_array_equal(Xt[observed], X[observed])
    assert np.isfinite(Xt).all() and np.isfinite(loaded.score_samples(X)).all()
    # Loaded files are saved again in the current format, with the same outputs.
    skmissvae.save(loaded, tmp_path / "again.pt")
    assert_same_outputs(skmissvae.load(tmp_path / "again.pt"), loaded, X)


def test_format_1_0_files_load_with_the_fixed_floor_they_were_trained_with(tmp_path):
    # Format 1.0 predates min_scale: its decoders had the fixed floor SCALE_FLOOR.
    state = torch.load(DATA / "mixture_format_1_1.pt", weights_only=True)
    state["format_version"] = [1, 0]
    del state["params"]["min_scale"]
    torch.save(state, tmp_path / "imputer.pt")
    loaded = skmissvae.load(tmp_path / "imputer.pt")
    assert loaded.min_scale == SCALE_FLOOR and loaded.model_.likelihood.min_scale == SCALE_FLOOR


@pytest.mark.parametrize("name", ["mixture_format_1_1", "demissvae_format_1_1"])
def test_files_without_min_effective_samples_impute_with_every_sample(name):
    # They were written when the default drew every importance sample in every call.
    assert "min_effective_samples" not in torch.load(DATA / f"{name}.pt", weights_only=True)["params"]
    assert skmissvae.load(DATA / f"{name}.pt").min_effective_samples is None


def test_ensembles_without_min_effective_samples_impute_with_every_sample():
    ensemble = skmissvae.load(DATA / "ensemble_format_1_2.pt")
    assert ensemble.estimator.min_effective_samples is None
    assert [m.min_effective_samples for m in ensemble.estimators_] == [None] * len(ensemble.estimators_)


def test_files_before_format_1_4_load_with_the_implicit_choice_gradient(tmp_path):
    # Ancestral mixtures were trained with implicit reparameterisation before the choice
    # of gradient existed, so further training of a loaded model keeps that estimator.
    state = torch.load(DATA / "mixture_format_1_1.pt", weights_only=True)
    assert "choice_gradient" not in state["params"]
    assert skmissvae.load(DATA / "mixture_format_1_1.pt").choice_gradient == "implicit"
    ensemble = skmissvae.load(DATA / "ensemble_format_1_2.pt")
    assert [m.choice_gradient for m in ensemble.estimators_] == ["implicit"] * len(ensemble.estimators_)
    assert ensemble.estimator.choice_gradient == "implicit"  # the template refits as the members were fitted
    imputer = ESTIMATORS["mixture"]().fit(correlated_table(40)[1])
    skmissvae.save(imputer, tmp_path / "imputer.pt")
    assert skmissvae.load(tmp_path / "imputer.pt").choice_gradient == "score"


def test_loaded_model_keeps_min_scale(tmp_path):
    X = correlated_table(40)[1]
    imputer = ESTIMATORS["mixture"](min_scale=0.7).fit(X)
    path = tmp_path / "imputer.pt"
    skmissvae.save(imputer, path)
    loaded = skmissvae.load(path)
    assert loaded.min_scale == 0.7 and loaded.model_.likelihood.min_scale == 0.7
    assert_same_outputs(loaded, imputer, X)


def test_load_refuses_other_format_versions_and_other_files(tmp_path):
    imputer = ESTIMATORS["mixture"]().fit(correlated_table(40)[1])
    path = tmp_path / "imputer.pt"
    skmissvae.save(imputer, path)
    state = torch.load(path, weights_only=True)
    for version in ([FORMAT_VERSION[0] + 1, 0], [FORMAT_VERSION[0], FORMAT_VERSION[1] + 1]):
        state["format_version"] = version
        torch.save(state, path)
        with pytest.raises(ValueError, match=r"save-format version .* reads format"):
            skmissvae.load(path)
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a skmissvae save file"):
        skmissvae.load(path)
    for foreign in (b"not a file at all", b"a,b\n1,2\n", b""):  # text, a CSV table, empty
        path.write_bytes(foreign)
        with pytest.raises(ValueError, match="not a skmissvae save file"):
            skmissvae.load(path)
    with pytest.raises(FileNotFoundError):
        skmissvae.load(tmp_path / "missing.pt")


# --------------------------------------------------------------------------------------
# pickle / joblib
# --------------------------------------------------------------------------------------
def test_pickle_and_joblib_round_trips(make, tmp_path):
    X = correlated_table(50)[1]
    imputer = make().fit(X)
    assert_same_outputs(pickle.loads(pickle.dumps(imputer)), imputer, X)
    joblib.dump(imputer, tmp_path / "imputer.joblib")
    assert_same_outputs(joblib.load(tmp_path / "imputer.joblib"), imputer, X)


_CHILD = textwrap.dedent(
    """
    import sys, pickle, joblib, torch
    torch.set_num_threads(1)
    sys.path[:0] = [{root!r}, {tests!r}]
    import skmissvae
    from _helpers import correlated_table
    imputer = getattr(skmissvae, {name!r})(**{params!r}).fit(correlated_table(50)[1])
    skmissvae.save(imputer, {out!r} + ".pt")
    joblib.dump(imputer, {out!r} + ".joblib")
    with open({out!r} + ".pkl", "wb") as f:
        pickle.dump(imputer, f)
    """
)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_round_trips_across_processes(name, tmp_path):
    """Fitted and saved in a fresh interpreter, loaded here: identical to fitting here."""
    out = str(tmp_path / "child")
    code = _CHILD.format(root=str(ROOT), tests=str(ROOT / "tests"), name=name,
                         params=PARAMS[name], out=out)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    X = correlated_table(50)[1]
    here = CLASSES[name](**PARAMS[name]).fit(X)
    for loaded in (
        skmissvae.load(out + ".pt"),
        joblib.load(out + ".joblib"),
        pickle.loads(pathlib.Path(out + ".pkl").read_bytes()),
    ):
        assert loaded.loss_curve_ == here.loss_curve_
        assert_same_outputs(loaded, here, X)


# --------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------
def test_model_recorded_on_cuda_runs_on_cpu_only_machine(make, tmp_path, monkeypatch):
    """CPU path of the GPU round trip: a ``device_`` of cuda loads and runs on the CPU."""
    X = correlated_table(40)[1]
    imputer = make().fit(X)
    expected = outputs(imputer, X)
    imputer.fitted_model_.device = torch.device("cuda")  # as if trained on a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    skmissvae.save(imputer, tmp_path / "f.pt")
    for loaded in (skmissvae.load(tmp_path / "f.pt"), pickle.loads(pickle.dumps(imputer))):
        assert loaded.device_.type == "cuda"
        for left, right in zip(outputs(loaded, X), expected):
            assert_array_equal(bits(left), bits(right))
        assert all(p.device.type == "cpu" for p in loaded.model_.parameters())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_trained_on_cuda_loads_on_cpu(make, tmp_path, monkeypatch):
    X = correlated_table(40)[1].astype(np.float32)
    imputer = make(device="cuda").fit(X)
    expected = np.asarray(imputer.transform(X))
    skmissvae.save(imputer, tmp_path / "f.pt")
    buffer = io.BytesIO()
    pickle.dump(imputer, buffer)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for loaded in (skmissvae.load(tmp_path / "f.pt"), pickle.loads(buffer.getvalue())):
        assert all(p.device.type == "cpu" for p in loaded.model_.parameters())
        Xt = loaded.transform(X)
        observed = ~np.isnan(X)
        assert_array_equal(Xt[observed], X[observed])
        assert np.isfinite(Xt).all()
        # Same weights, another device: close, not bit-identical (different kernels).
        np.testing.assert_allclose(Xt, expected, rtol=1e-2, atol=1e-2 * np.nanstd(X))


def _mixed_frame(n=40, seed=0):
    rng = np.random.RandomState(seed)
    frame = pd.DataFrame({
        "x": rng.standard_normal(n),
        "amount": np.where(rng.rand(n) < 0.5, 0.0, rng.gamma(2.0, size=n)),
        "flag": rng.rand(n) < 0.3,
        "kind": pd.Categorical(rng.choice(["u", "v", "w"], n)),
        "code": rng.choice([1, 2, 3], n).astype(np.int64),
    })
    for column in ("x", "amount"):
        frame.loc[rng.rand(n) < 0.25, column] = np.nan
    frame["kind"] = frame["kind"].where(rng.rand(n) > 0.2)
    return frame


@pytest.mark.parametrize("as_frame", [True, False])
def test_mixed_type_models_round_trip(make, tmp_path, as_frame):
    frame = _mixed_frame()
    types = {"amount": "semicontinuous", "code": "categorical"}
    X = frame if as_frame else frame.drop(columns=["flag", "kind"]).to_numpy(dtype=float)
    column_types = types if as_frame else {1: "semicontinuous", 2: "categorical"}
    imputer = make(column_types=column_types).fit(X)
    path = tmp_path / "mixed.pt"
    skmissvae.save(imputer, path)
    loaded = skmissvae.load(path)
    assert loaded.column_types_ == imputer.column_types_
    if as_frame:
        pd.testing.assert_frame_equal(loaded.transform(X), imputer.transform(X))
        for left, right in zip(loaded.sample_imputations(X, 2), imputer.sample_imputations(X, 2)):
            pd.testing.assert_frame_equal(left, right)
        assert_array_equal(bits(loaded.score_samples(X)), bits(imputer.score_samples(X)))
    else:
        assert_same_outputs(loaded, imputer, X)


def test_mixed_type_ensemble_round_trips(tmp_path):
    frame = _mixed_frame()
    member = ESTIMATORS["mixture"](column_types={"amount": "semicontinuous"})
    ensemble = VAEEnsembleImputer(member, n_estimators=2, random_state=0).fit(frame)
    skmissvae.save(ensemble, tmp_path / "e.pt")
    loaded = skmissvae.load(tmp_path / "e.pt")
    pd.testing.assert_frame_equal(loaded.transform(frame), ensemble.transform(frame))
    assert_array_equal(loaded.score_samples(frame), ensemble.score_samples(frame))


def test_missing_values_markers_round_trip(tmp_path):
    X = correlated_table(40)[1]
    frame = pd.DataFrame(X).astype("Float64")
    imputer = ESTIMATORS["mixture"](missing_values=pd.NA).fit(frame)
    skmissvae.save(imputer, tmp_path / "na.pt")
    loaded = skmissvae.load(tmp_path / "na.pt")
    assert loaded.missing_values is pd.NA
    pd.testing.assert_frame_equal(loaded.transform(frame), imputer.transform(frame))
