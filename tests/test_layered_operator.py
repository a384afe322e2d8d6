"""The layered blur with occlusion as a measurement operator: the camera's forward model, an exact proximal step, the
closed form for one layer, and data of an in-focus subject before a blurred background that only it fits."""
import pytest
import torch

from conftest import dense_minimiser
import hidd.operators as operators
from hidd.camera import Camera, Layers, blur_layered
from hidd.camera.noise import NoiseLevelFunction
from hidd.camera.psf import LensPSF
from hidd.camera.tone import tone_curve
from hidd.operators import DepthVaryingBlur, LayeredBlur, UniformBlur, fast_frame, pad_to_frame

SIZE = 16


def _subject(size: int, centre: float, radius: float) -> torch.Tensor:
    """A disk-shaped subject's coverage (size, size), soft over about a pixel."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    distance = ((yy - centre) ** 2 + (xx - centre) ** 2).double().sqrt()
    return (radius + 0.5 - distance).clamp(0, 1)


def _operator(scenes, boundary="free", tone="none", lens=None):
    count = len(scenes)
    noise = NoiseLevelFunction.white(tone_curve(tone), torch.full((count,), 0.01))
    return LayeredBlur(scenes, noise, torch.full((count,), 0.01), lens=lens, boundary=boundary)


def test_the_forward_model_is_the_cameras():
    """One concept in one place: what the camera renders is what the data step inverts."""
    lens = LensPSF(1.0, blades=6, softening=0.4)
    scene = Layers.subject(_subject(32, 14.0, 7.0), background=3.5, subject=1.0)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    camera = Camera(psf=lens.with_radius(3.5), tone="none", bits=None)
    assert torch.allclose(_operator([scene], lens=lens).linear(x), camera.linear_blur(x, layers=scene), atol=1e-12)


def _dense_prox(op, u0, v, rho, boundary):
    """The minimiser of ‖A u − v‖² + ρ‖u − u0 padded‖² by a dense solve, A built column by column."""
    n = u0.shape[-1]
    p = max(k.shape[-1] for k in op._psfs(0, u0)) // 2 if boundary == "free" else 0
    frame = fast_frame(n, n, p)  # (the operator's: the fill behind the subject reaches every pixel of it)
    m = frame[0]
    scene = Layers(pad_to_frame(op.layers[0].alphas, p, frame, "replicate"), op.layers[0].radii)
    framed = LayeredBlur([scene], op.noise, op.noise_sigma, lens=op.lenses_shape, boundary=boundary)

    def forward(flat):
        return framed.linear(flat.reshape(1, 1, m, m))[..., p:p + n, p:p + n].reshape(-1)

    start = pad_to_frame(u0, p, frame, "reflect")
    return dense_minimiser(forward, start, v, rho).reshape(m, m)[p:p + n, p:p + n]


@pytest.mark.parametrize("boundary", ["free", "reflect"])
def test_prox_is_the_exact_minimiser_of_the_occluding_model(boundary, monkeypatch):
    monkeypatch.setattr(operators, "CG_ITERATIONS", 400)
    monkeypatch.setattr(operators, "CG_TOLERANCE", 1e-11)
    op = _operator([Layers.subject(_subject(SIZE, 7.0, 4.0), background=2.5, subject=0.0)], boundary)
    generator = torch.Generator().manual_seed(1)
    u0, v = (torch.rand(1, 1, SIZE, SIZE, dtype=torch.float64, generator=generator) for _ in range(2))
    solved = op.solve_linear(0, u0, v, 0.05)
    assert torch.allclose(solved[0, 0], _dense_prox(op, u0, v, 0.05, boundary), atol=1e-7)


def test_one_whole_frame_layer_is_the_closed_form():
    generator = torch.Generator().manual_seed(2)
    u0, v = (torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=generator) for _ in range(2))
    op = _operator([Layers(torch.ones(1, 32, 32, dtype=torch.float64), (2.5,))])
    uniform = UniformBlur(LensPSF(2.5).kernels(3).double()[None], op.noise, torch.tensor([2.5]), torch.tensor([0.01]))
    rho = torch.tensor(0.1, dtype=torch.float64).reshape(1, 1, 1, 1)
    assert torch.allclose(op.solve_linear(0, u0, v, 0.1), uniform.solve_linear(u0, v, rho), atol=1e-9)


def test_only_occlusion_fits_a_sharp_subject_before_a_blurred_background(monkeypatch):
    """Noise-free data of the camera's subject scene: the occluding step fits it from a wrong start; the gather model
    with the same (pinhole) radius map cannot, next to the subject's edge."""
    monkeypatch.setattr(operators, "CG_ITERATIONS", 300)
    monkeypatch.setattr(operators, "CG_TOLERANCE", 1e-12)
    scene = Layers.subject(_subject(40, 19.5, 9.0), background=4.0, subject=0.0)
    sharp = torch.rand(1, 3, 40, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    layered = _operator([scene], "reflect")
    y = layered.linear(sharp)
    start = torch.full_like(sharp, 0.5)
    fitted = layered.solve_linear(0, start, y, 1e-4)
    gathered = DepthVaryingBlur(scene.radius_map()[None, None], layered.noise, layered.noise_sigma, boundary="reflect")
    assert (layered.linear(fitted) - y).abs().max() < 1e-2
    assert (layered.linear(gathered.solve_linear(0, start, y, 1e-4)) - y).abs().max() > 0.1


def test_each_image_of_a_batch_is_solved_with_its_own_layers():
    scenes = [Layers.subject(_subject(24, 11.0, 6.0), background=3.0),
              Layers(torch.stack([torch.ones(24, 24), _subject(24, 8.0, 5.0).float()]).double(), (1.0, 2.5))]
    x0, y = (torch.rand(2, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(s)) for s in (4, 5))
    op = _operator(scenes, tone="srgb")
    both = op.prox(x0, y, torch.tensor([0.1, 0.2]))
    alone = _operator(scenes[1:], tone="srgb").prox(x0[1:], y[1:], torch.tensor([0.2]))
    assert torch.allclose(both[1:], alone, atol=1e-10)
    part = op.select([1])  # after the batch's solve: the part's own layers, no cache of image 0's carried over
    assert torch.allclose(part.prox(x0[1:], y[1:], torch.tensor([0.2])), alone, atol=1e-10)
    assert torch.equal(part.radius_field, op.radius_field[1:])


def test_the_step_returns_no_autograd_graph_under_grad_mode():
    op = _operator([Layers.subject(_subject(SIZE, 7.0, 4.0), background=2.5)])
    u0, v = (torch.rand(1, 1, SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(s))
             for s in (6, 7))
    with torch.enable_grad():
        assert not op.solve_linear(0, u0, v, 0.1).requires_grad


def test_coverages_must_be_one_images_layers_and_images_a_batch():
    with pytest.raises(ValueError, match=r"\(L, H, W\)"):
        _operator([Layers(torch.ones(1, 2, 8, 8), (1.0, 2.0))])
    with pytest.raises(ValueError, match="expected images"):
        blur_layered(torch.rand(3, 8, 8), torch.ones(1, 8, 8), [LensPSF(1.0).kernels(1)[0]])


def test_known_layers_reach_the_data_step_and_their_in_focus_subject_comes_back_as_it_was(tmp_path):
    from conftest import make_tiny_checkpoint, synthetic_photo
    import hidd.stages.estimate as estimate
    from hidd.deblur import Deblurrer
    from hidd.prior import load_prior

    unguarded = ["sampler.max_noise_gain=0", "sampler.edge_read_share=0", "sampler.hedge_share=1",
                 "sampler.ringing_share=1", "sampler.noisy_retry_lambda=0"]  # (an untrained prior's result is kept)
    deblur = Deblurrer(load_prior(make_tiny_checkpoint(tmp_path / "tiny.pt"), preset="depth",
                                  overrides=["sampler.radius_map=true", "sampler.num_steps=3", *unguarded]))
    sharp = torch.from_numpy(synthetic_photo(3, 64)).permute(2, 0, 1)[None].float()
    alpha = _subject(64, 31.5, 14.0).float()
    scene = Layers.subject(alpha, background=4.0)
    y = Camera(psf=LensPSF(4.0), white_noise=0.01).render(sharp, layers=scene,
                                                          generator=torch.Generator().manual_seed(0))
    models = []
    original = estimate.measurement_model
    estimate.measurement_model = lambda *a: models.append(original(*a)) or models[-1]
    try:
        out = deblur(y, layers=[scene])
    finally:
        estimate.measurement_model = original
    assert isinstance(models[0], LayeredBlur) and models[0].layers[0].radii == (4.0, 0.0)
    inside = alpha == 1
    assert torch.equal(out.images[..., inside], y[..., inside])  # the subject, in focus, kept as it was
    assert (out.images[..., alpha == 0] - y[..., alpha == 0]).abs().max() > 1e-3  # the background deblurred
    with pytest.raises(ValueError, match="not both"):
        deblur(y, layers=[scene], radius_map=scene.radius_map()[None])
    with pytest.raises(ValueError, match="one per photo of 64×64"):
        deblur(y, layers=[scene, scene])
    with pytest.raises(ValueError, match="one per photo of 64×64"):
        deblur(y, layers=[Layers.subject(alpha[:63, :63], background=4.0)])


def test_known_layers_need_a_spatially_varying_sampler(tmp_path):
    from conftest import make_tiny_checkpoint
    from hidd.deblur import Deblurrer
    from hidd.prior import load_prior

    deblur = Deblurrer(load_prior(make_tiny_checkpoint(tmp_path / "tiny.pt"), preset="fast"))
    scene = Layers.subject(_subject(32, 15.5, 7.0).float(), background=3.0)
    with pytest.raises(ValueError, match="need sampler.radius_map"):
        deblur(torch.rand(1, 3, 32, 32), layers=[scene])


def test_bench_quality_oracle_layers_gives_a_subject_image_its_true_layers(tmp_path, monkeypatch):
    import json

    import numpy as np
    from PIL import Image

    import hidd.stages.estimate as estimate
    from conftest import load_script, make_tiny_checkpoint, read_csv, synthetic_photo

    bench_quality = load_script("bench_quality")
    root = tmp_path / "bench"
    alpha = _subject(32, 15.5, 7.0).float()
    sharp = torch.from_numpy(synthetic_photo(5, 32)).permute(2, 0, 1)[None].float()
    blurred = Camera(psf=LensPSF(3.0)).render(sharp, layers=Layers.subject(alpha, 3.0))
    for sub, image in (("sharp", sharp), ("blurred", blurred)):
        (root / sub).mkdir(parents=True)
        Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(root / sub / "s.png")
    for sub, array in (("alphas", alpha), ("radius_maps", 3.0 * (1 - alpha))):
        (root / sub).mkdir()
        np.save(root / sub / "s.npy", array.numpy())
    for sub in ("sharp", "blurred"):  # and a depth image of the same size, rendered without layers
        Image.open(root / sub / "s.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / sub / "t.png")
    np.save(root / "radius_maps" / "t.npy", np.full((32, 32), 2.0, np.float32))
    meta = {"s": {"condition": "subject", "radius": "depth-varying", "radius_map": "radius_maps/s.npy",
                  "alpha": "alphas/s.npy", "layers": {"radii": [3.0, 0.0], "order": "far to near"},
                  "tone_curve": "srgb", "psf": {"radius": 3.0}},
            "t": {"condition": "depth", "radius": "depth-varying", "radius_map": "radius_maps/t.npy",
                  "tone_curve": "srgb", "psf": {"radius": 2.0}}}
    (root / "meta.json").write_text(json.dumps({"images": meta}))
    models = []
    original = estimate.measurement_model
    monkeypatch.setattr(estimate, "measurement_model", lambda *a: models.append(original(*a)) or models[-1])
    bench_quality.main(["--benchmark", str(root), "--methods", "depth", "--oracle-layers", "--batch", "2",
                        "--checkpoint", str(make_tiny_checkpoint(tmp_path / "tiny.pt")),
                        "--set", "sampler.num_steps=2", "--threads", "1", "--output", str(tmp_path / "bq")])
    rows = read_csv(tmp_path / "bq" / "per_image.csv")
    assert {row["method"] for row in rows} == {"hidd depth (oracle layers)"} and len(rows) == 2
    layered, mapped = sorted(models, key=lambda m: not isinstance(m, LayeredBlur))  # one batch each
    assert isinstance(layered, LayeredBlur) and layered.layers[0].radii == (3.0, 0.0)
    assert torch.allclose(layered.layers[0].alphas[1], alpha)
    assert isinstance(mapped, DepthVaryingBlur) and torch.equal(mapped.radius_map, torch.full((1, 1, 32, 32), 2.0))
