"""The Gradio page of ``worldwarp ui``: layout and thin callbacks over :mod:`worldwarp.ui.session`.

Every callback reads the controls into an :class:`~worldwarp.ui.session.InputSpec`, calls one session action,
and maps the returned view onto components. Errors arrive as messages (a ``gr.Warning`` toast plus the status
line), never as tracebacks. Each browser tab gets its own :class:`~worldwarp.ui.session.UISession` through
``gr.State``; the model is loaded once per app and shared; generation is queued one job at a time.

Components carry ``elem_id``\\ s (``image``, ``trajectory``, ``generate``, ``rollback``, ``download-video`` ...)
so browser tests and custom CSS can find them.
"""

from __future__ import annotations

from typing import Any

from worldwarp.ui.session import InputSpec, SessionView, SharedModel, UIConfig, UISession

__all__ = ["CSS", "build_app", "launch_app"]

CSS = """
#status { min-height: 2.4em; }
#compose-row { align-items: flex-end; }
#chunk-panel img, #path-preview img { image-rendering: pixelated; }
.ww-note { color: var(--body-text-color-subdued); font-size: 0.9em; }
"""

INTRO = (
    "# WorldWarp\n"
    "One image and a camera path in, a 3D-consistent fly-through out. Each chunk fits a 3D Gaussian cache to "
    "the latest frames, warps it into the next cameras (the *warped prior*, valid where the *mask* is white), "
    "and lets the ST-Diff model fill the holes and revise the rest."
)


def accept_any_upload(component: Any) -> Any:
    """Let a gr.Image's uploads reach our checks even when Pillow cannot open them.

    Gradio's own preprocessing opens the upload with Pillow and fails the whole event without a message (every
    output shows a red "Error"); wrapped, the component passes such a file's path on, so our input checks say
    what is wrong with it. (A wrapped instance, not a subclass: Gradio writes a .pyi file next to the module of
    every Component subclass.)
    """
    original = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return original(payload)
        except Exception:
            path = getattr(payload, "path", None)
            return str(path) if path else None

    component.preprocess = preprocess
    return component


def check_upload(path: str | None) -> str | None:
    """One line saying why an uploaded start image cannot be used (None when it can, or when there is none)."""
    if not path:
        return None
    from worldwarp.io.images import load_image_header
    from worldwarp.ui.session import user_message

    try:
        load_image_header(path)
    except Exception as e:
        return user_message(e)
    return None


def build_app(config: UIConfig | None = None):  # -> gradio.Blocks
    """The page for ``config`` (tiny settings in tests, the embedded CPU preset by default), already queued
    with one generation at a time."""
    import gradio as gr

    from worldwarp.trajectory.presets import preset_names
    from worldwarp.ui.session import compose_spec, list_examples, preview_path, user_message

    cfg = config or UIConfig()
    model = SharedModel(cfg)
    pc = cfg.pipeline
    examples = list_examples(cfg.examples_folder())

    def session_of(session: UISession | None) -> UISession:
        return session if session is not None else UISession(cfg, model)

    def spec_of(image, depth, trajectory, camera_file, frames, fov, speed, scale, camera_video=None) -> InputSpec:
        frames_int = int(frames) if frames is not None and float(frames).is_integer() else frames
        return InputSpec(
            image=image or None, depth=depth or None, trajectory=trajectory or "", camera_file=camera_file or None,
            frames=frames_int, fov_x_deg=float(fov), speed=float(speed), scale=float(scale),
            camera_video=camera_video or None,
        )  # fmt: skip

    def outputs_of(view: SessionView) -> tuple[Any, ...]:
        if view.error is not None:
            gr.Warning(view.error)
        has = view.chunks_done > 0
        return (
            view.status,
            str(view.video) if view.video is not None else None,
            view.panel,
            gr.DownloadButton(value=str(view.video) if view.video else None, interactive=view.video is not None),
            gr.DownloadButton(value=str(view.cameras) if view.cameras else None, interactive=view.cameras is not None),
            gr.DownloadButton(value=str(view.ply) if view.ply else None, interactive=view.ply is not None),
            gr.Slider(maximum=max(view.chunks_done, 1), value=max(view.chunks_done - 1, 0), interactive=has),
        )

    with gr.Blocks(title="WorldWarp", analytics_enabled=False) as demo:
        session = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("### 1. Start image")
                example = gr.Dropdown(
                    choices=examples, value=None, label="Example", elem_id="example", visible=bool(examples),
                    info="or upload your own image below",
                )  # fmt: skip
                image = accept_any_upload(gr.Image(
                    label="Start image", type="filepath", image_mode=None, sources=["upload"], height=220,
                    elem_id="image",
                ))  # fmt: skip
                depth = gr.File(
                    label="Depth of the image (optional: 16-bit PNG in mm, .npy, .exr, .pfm)", type="filepath",
                    file_types=[".png", ".npy", ".exr", ".pfm"], height=80, elem_id="depth",
                )  # fmt: skip
                fov = gr.Slider(20, 120, value=60, step=1, label="Horizontal field of view (deg)", elem_id="fov")
            with gr.Column(scale=3, min_width=420):
                gr.Markdown("### 2. Camera path")
                trajectory = gr.Textbox(
                    value=cfg.default_trajectory, label="Preset spec ('+' together, ',' one after another)",
                    elem_id="trajectory",
                )  # fmt: skip
                with gr.Row(equal_height=False, elem_id="compose-row"):
                    preset = gr.Dropdown(
                        choices=preset_names(), value="pan_left", label="Preset", elem_id="preset", scale=3
                    )
                    add_with = gr.Button("+ at the same time", size="sm", elem_id="add-with", scale=2)
                    add_then = gr.Button(", then", size="sm", elem_id="add-then", scale=1)
                    clear = gr.Button("Clear", size="sm", elem_id="clear-spec", scale=1)
                camera_file = gr.File(
                    label="...or a camera file (RealEstate10K .txt, transforms.json, cameras.json, .npz)",
                    type="filepath", file_types=[".txt", ".json", ".npz"], height=80, elem_id="camera-file",
                )  # fmt: skip
                camera_video = gr.Video(
                    label="...or from a video: the camera moves like this clip's (its path is extracted by "
                    "structure from motion, once per clip; it replaces the preset and the camera file)",
                    sources=["upload"], height=170, elem_id="camera-video",
                )  # fmt: skip
                with gr.Row():
                    frames = gr.Number(
                        value=cfg.default_frames, minimum=2, maximum=cfg.max_frames, precision=0, label="Frames",
                        elem_id="frames",
                    )  # fmt: skip
                    speed = gr.Slider(0.25, 4, value=1, step=0.05, label="Speed", elem_id="speed")
                    scale = gr.Slider(0.1, 4, value=1, step=0.05, label="Scale", elem_id="scale")
                preview = gr.Image(label="Path preview", interactive=False, height=230, elem_id="path-preview")
                preview_msg = gr.Markdown("", elem_id="preview-message", elem_classes="ww-note")

        gr.Markdown("### 3. Generate")
        with gr.Row(equal_height=True):
            strength = gr.Slider(
                0, 1, value=cfg.strength(), step=0.05, label="Strength (revision of warped regions)",
                elem_id="strength", scale=3,
            )  # fmt: skip
            chunks = gr.Slider(1, 20, value=1, step=1, label="Chunks per click", elem_id="chunks", scale=2)
            seed = gr.Number(value=pc.seed, precision=0, label="Seed", elem_id="seed", scale=1, min_width=90)
            generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=1)
        gr.Markdown(
            f"{pc.height}x{pc.width}, {pc.chunk_frames}-frame chunks with {pc.overlap} frames of history, "
            + (
                ("one model pass." if pc.sampler.solver == "direct" else f"{pc.sampler.steps} diffusion steps.")
                if pc.fill == "diffusion"
                else "inpainting fill (baseline)."
            ),
            elem_classes="ww-note",
        )
        status = gr.Markdown("nothing generated yet", elem_id="status")
        with gr.Row(equal_height=False):
            video = gr.Video(
                label="Video so far", interactive=False, loop=True, autoplay=True, height=330, scale=2,
                elem_id="result-video",
            )  # fmt: skip
            with gr.Column(scale=3):
                panel = gr.Image(
                    label="Latest chunk: warped prior | valid mask | result", show_label=False, interactive=False,
                    height=210, elem_id="chunk-panel",
                )  # fmt: skip
                with gr.Row(equal_height=True):
                    keep = gr.Slider(
                        0, 1, value=0, step=1, label="Keep the first k chunks", interactive=False, scale=3,
                        elem_id="rollback-k",
                    )  # fmt: skip
                    rollback = gr.Button("Roll back", elem_id="rollback", scale=1)
                with gr.Row():
                    dl_video = gr.DownloadButton("Video (.mp4)", interactive=False, elem_id="download-video")
                    dl_cams = gr.DownloadButton("Cameras (.json)", interactive=False, elem_id="download-cameras")
                    dl_ply = gr.DownloadButton("3DGS cache (.ply)", interactive=False, elem_id="download-ply")

        spec_inputs = [image, depth, trajectory, camera_file, frames, fov, speed, scale, camera_video]

        def on_upload(path: str | None):
            error = check_upload(path)
            return f"**Error:** {error}" if error else gr.skip()

        image.upload(on_upload, image, status)
        view_outputs = [status, video, panel, dl_video, dl_cams, dl_ply, keep]

        # ---------------------------------------------------------------- callbacks (thin)
        def on_example(name: str | None, sess: UISession | None):
            sess = session_of(sess)
            if not name:
                return sess, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            try:
                ex = sess.example_files(name)
            except Exception as e:
                gr.Warning(user_message(e))
                return sess, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return (
                sess, str(ex.image), str(ex.depth) if ex.depth else None, ex.fov_x_deg, ex.speed, ex.scale,
                ex.trajectory if ex.trajectory else gr.skip(), ex.frames if ex.frames else gr.skip(),
            )  # fmt: skip

        example.change(on_example, [example, session], [session, image, depth, fov, speed, scale, trajectory, frames])

        def on_preview(*values, progress=gr.Progress()):
            try:
                spec = spec_of(*values)
            except (TypeError, ValueError) as e:
                return None, f"**Error:** {user_message(e)}"
            p = preview_path(spec, pc.height, pc.width, cfg.max_frames, progress=lambda f, m: progress(f, desc=m))
            if p.error is not None:
                return None, f"**Error:** {p.error}"
            return p.image, p.message

        gr.on(
            [c.change for c in spec_inputs] + [demo.load],
            on_preview,
            spec_inputs,
            [preview, preview_msg],
            trigger_mode="always_last",
            # one at a time, in order: with several in flight an older preview (e.g. of the example's path)
            # could finish last and overwrite the message of the path now in the box
            concurrency_limit=1,
            concurrency_id="preview",
        )

        def on_compose(mode: str):
            def fn(spec: str, name: str | None) -> Any:
                try:
                    return compose_spec(spec or "", name or "", mode)  # type: ignore[arg-type]
                except Exception as e:
                    gr.Warning(user_message(e))
                    return gr.skip()

            return fn

        add_with.click(on_compose("with"), [trajectory, preset], trajectory)
        add_then.click(on_compose("then"), [trajectory, preset], trajectory)
        clear.click(lambda: "", None, trajectory)

        def on_generate(sess, n, tau, seed_value, *values, progress=gr.Progress(track_tqdm=True)):
            sess = session_of(sess)
            try:
                spec = spec_of(*values)
                n_int, seed_int = int(n), int(seed_value or 0)
            except (TypeError, ValueError) as e:
                yield (sess, *outputs_of(sess.view(error=user_message(e))))
                return
            for view in sess.generate(spec, n_int, float(tau), seed_int, progress=lambda f, m: progress(f, desc=m)):
                yield (sess, *outputs_of(view))

        generate.click(
            on_generate, [session, chunks, strength, seed, *spec_inputs], [session, *view_outputs],
            concurrency_id="generate",
        )  # fmt: skip

        def on_rollback(sess, k):
            sess = session_of(sess)
            return (sess, *outputs_of(sess.rollback(int(k or 0))))

        rollback.click(on_rollback, [session, keep], [session, *view_outputs], concurrency_id="generate")

    demo.queue(default_concurrency_limit=1)
    return demo


def launch_app(
    demo: Any, *, host: str = "127.0.0.1", port: int | None = None, block: bool = True, share: bool = False
) -> Any:
    """Serve ``demo`` on ``host:port`` (``block=False`` returns at once and serves from a background thread)."""
    return demo.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, share=share, css=CSS, show_error=False,
        footer_links=["gradio"], run_history=False, max_file_size="200mb",
    )  # fmt: skip
