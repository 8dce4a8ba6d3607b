"""MindSpeed-LLM 26.1.0 (emulator/roots/mindspeed-llm-26.1.0/): what differs from 26.0.0, each read from the 26.1.0
branch head (reference/README.md lists the commit). The fixtures are test_mindspeed.py's, imported by name: the
tests' parameters `run` then shadow the import, as pytest intends.
"""
# ruff: noqa: F811

import os

from test_mindspeed import TRAIN, Run, run, sft, tracker, work  # noqa: F401 (run and work are fixtures)

V = '26.1.0'


def test_checkpoint_format_is_no_longer_reset(run: Run) -> None:
    # _add_dummy_args_v2 no longer sets ckpt_format='torch' (mindspeed_llm/training/arguments.py#L156-176): Megatron's
    # torch_dist default is written, and --ckpt-format torch still gives the per-rank torch layout.
    data = [*TRAIN, '--data-path', 'data/pre_text_document']
    dist = run(V, 'pretrain_gpt.py', *data, '--save', 'd')
    assert dist.returncode == 0, dist.stderr
    assert 'in torch_dist format' in dist.stdout
    assert os.path.isfile(os.path.join(run.cwd, 'd', 'iter_0000006', 'metadata.json'))  # type: ignore[attr-defined]
    torch = run(V, 'pretrain_gpt.py', *data, '--ckpt-format', 'torch', '--save', 't')
    assert torch.returncode == 0, torch.stderr
    assert 'in torch format' in torch.stdout
    assert os.path.isfile(os.path.join(run.cwd, 't', 'iter_0000006', 'mp_rank_00', 'model_optim_rng.pt'))  # type: ignore[attr-defined]
    # The same run on 26.0.0 writes torch whatever Megatron's default says.
    assert 'in torch format' in run('26.0.0', 'pretrain_gpt.py', *data, '--save', 'o').stdout
    # --async-save works with torch_dist (checkpointing.py#L276-282) and still fails on torch: in Megatron's own
    # save_checkpoint (core_v0.12.1 megatron/training/checkpointing.py#L396-397), as MindSpeed-LLM's wrapper
    # (#L278-279) is patched in for LoRA only (features_manager/finetune/lora.py#L52).
    async_dist = run(V, 'pretrain_gpt.py', *data, '--async-save', '--save', 'a')
    assert async_dist.returncode == 0, async_dist.stderr
    assert tracker(run, 'a') == '6'
    legacy = run(V, 'pretrain_gpt.py', *data, '--ckpt-format', 'torch', '--async-save', '--save', 'b')
    assert legacy.returncode == 1
    assert 'NotImplementedError: Async checkpoint save not implemented for legacy checkpoints' in legacy.stderr
    assert 'megatron/training/checkpointing.py", line 397, in save_checkpoint' in legacy.stderr


def test_resume_from_a_torch_dist_checkpoint(run: Run) -> None:
    data = [*TRAIN, '--data-path', 'data/pre_text_document', '--save', 'r']
    assert run(V, 'pretrain_gpt.py', *data, '--train-iters', '3').returncode == 0
    again = run(V, 'pretrain_gpt.py', *data, '--load', 'r')
    assert again.returncode == 0, again.stderr
    assert 'at iteration 3' in again.stdout and 'iteration        6/       6' in again.stdout
    # With --ckpt-format torch the same folder is refused unless the format is auto-detected (Megatron core_r0.12.0
    # megatron/training/checkpointing.py#L1194, #L838-845: no sharded state dict was built for it).
    pinned = run(V, 'pretrain_gpt.py', *data, '--ckpt-format', 'torch', '--load', 'r')
    assert pinned.returncode == 1
    assert ('RuntimeError: Detected load from a distributed checkpoint, '
            'but neither --use-dist-ckpt nor --auto-detect-ckpt-format is set.') in pinned.stderr
    detected = run(V, 'pretrain_gpt.py', *data, '--ckpt-format', 'torch', '--auto-detect-ckpt-format',
                   '--load', 'r', '--save', 'r2')
    assert detected.returncode == 0, detected.stderr
    assert ' loading distributed checkpoint from r at iteration' in detected.stdout


def test_convert_v2_rejects_unknown_flags(run: Run) -> None:
    # convert_ckpt_v2.py#L132-134 (2.3.0 and 26.0.0 ignore them).
    args = ['--load-dir', 'hf', '--save-dir', 'mg', '--model-type-hf', 'qwen3']
    r = run(V, 'convert_ckpt_v2.py', *args, '--no-such-flag', 'x')
    assert r.returncode == 1
    assert 'ValueError: Unrecognized argument : --no-such-flag x' in r.stderr
    assert not os.path.exists(os.path.join(run.cwd, 'mg'))  # type: ignore[attr-defined]
    assert run('26.0.0', 'convert_ckpt_v2.py', *args, '--no-such-flag', 'x').returncode == 0
    # A direction it does not convert raises a real Exception now (#L152-153), not a str.
    same = run(V, 'convert_ckpt_v2.py', '--load-model-type', 'mg', '--save-model-type', 'mg', '--load-dir', 'mg',
               '--save-dir', 'x')
    assert same.returncode == 1
    assert 'Exception: This conversion scheme is not supported' in same.stderr


def test_convert_v2_model_list(run: Run) -> None:
    # --model-type-hf: glm45-moe is gone, glm45-air and deepseek4 are new (convert_ckpt_v2.py's choices).
    base = ['--load-dir', 'hf', '--save-dir', 'mg']
    assert run(V, 'convert_ckpt_v2.py', *base, '--model-type-hf', 'glm45-air').returncode == 0
    gone = run(V, 'convert_ckpt_v2.py', *base, '--model-type-hf', 'glm45-moe')
    assert gone.returncode == 2
    assert "invalid choice: 'glm45-moe'" in gone.stderr


def test_high_availability_and_online_conversion_messages(run: Run) -> None:
    data = [*TRAIN, '--data-path', 'data/pre_text_document', '--ckpt-format', 'torch']
    # high_availability.py#L37-38: find_spec, no ModuleNotFoundError cause.
    missing = run(V, 'pretrain_gpt.py', *data, '--enable-high-availability')
    assert 'AssertionError: High availability feature requires the mindio_ttp package but is not installed.' in missing.stderr
    assert 'ModuleNotFoundError' not in missing.stderr
    # HA with torch_dist (Megatron's default, no longer reset) is refused (#L43-44).
    dist = run(V, 'pretrain_gpt.py', *TRAIN, '--data-path', 'data/pre_text_document', '--enable-high-availability',
               env={'MLEMU_MINDIO_TTP': '1'})
    assert 'AssertionError: switch of the high availability feature is unsupported' in dist.stderr
    # convert_checkpoint.py#L113-114 and #L148-149.
    hf2mg = sft(run, V, '--load', 'hf', '--enable-hf2mg-convert', '--ckpt-format', 'torch_dist', '--save', 's')
    assert 'AssertionError: --ckpt-format torch_dist cannot be used together with --enable-hf2mg-convert' in hf2mg.stderr
    lora = sft(run, V, '--load', 'hf', '--ckpt-format', 'torch', '--save', 'l', '--lora-r', '8', '--lora-alpha', '16',
               '--lora-target-modules', 'linear_qkv')
    assert 'AssertionError: Lora is not supported with enable_mg2hf_convert' in lora.stderr


def test_mg2hf_copies_and_the_glm45_names(run: Run) -> None:
    r = sft(run, V, '--load', 'hf', '--no-load-optim', '--no-load-rng', '--ckpt-format', 'torch', '--save', 'm')
    assert r.returncode == 0, r.stderr
    saved = sorted(os.listdir(os.path.join(run.cwd, 'm')))  # type: ignore[attr-defined]
    assert 'mg2hf_iteration3' in saved and 'mg2hf_iteration6' in saved
    # initialize.py#L245-248: glm45-moe is no longer an online-conversion model.
    model = sft(run, V, '--load', 'hf', '--enable-hf2mg-convert', '--model-type-hf', 'gemma', '--ckpt-format', 'torch')
    assert 'Supported models: llama2, qwen3, qwen3-moe, deepseek3, glm45-air, glm45, bailing_mini' in model.stderr


def test_preprocess_openai_prompt_type_and_reasoning_effort(run: Run) -> None:
    common = ['--input', 'data/../hf/config.json', '--tokenizer-type', 'PretrainedFromHF', '--tokenizer-name-or-path', 'hf',
              '--output-prefix', './out', '--workers', '1']
    # preprocess_data.py#L254-264: --prompt-type is accepted with OpenAIInstructionHandler from 26.1.0 on.
    openai = ['--handler-name', 'OpenAIInstructionHandler', '--prompt-type', 'qwen3']
    old = run('26.0.0', 'preprocess_data.py', *common, *openai)
    assert 'If specify prompt_type , handler name must be in:' in old.stderr
    new = run(V, 'preprocess_data.py', *common, *openai, '--reasoning-effort', 'max', '--enable-thinking', 'false')
    assert 'If specify prompt_type' not in new.stderr
    # #L322-323: --reasoning-effort needs --enable-thinking true.
    assert "ValueError: reasoning_effort='max' requires --enable-thinking True." in new.stderr


def _files(run: Run, directory: str) -> list[str]:
    return sorted(os.listdir(os.path.join(run.cwd, directory)))  # type: ignore[attr-defined]


def test_torch_dist_layout_and_torn_async_save(run: Run) -> None:
    # Megatron core_v0.12.1 dist_checkpointing.save: common.pt at once (serialization.py#L378), one .distcp per rank,
    # .metadata at finalize (strategies/torch.py#L790-791), metadata.json after it (#L386-392), then the tracker
    # (megatron/training/checkpointing.py#L526-540).
    data = [*TRAIN, '--data-path', 'data/pre_text_document', '--save-interval', '2']
    sync = run(V, 'pretrain_gpt.py', *data, '--save', 's')
    assert sync.returncode == 0, sync.stderr
    assert _files(run, 's/iter_0000006') == ['.metadata', '__0_0.distcp', 'common.pt', 'metadata.json']
    assert not any(n.startswith('mp_rank_') for n in _files(run, 's/iter_0000002'))
    assert tracker(run, 's') == '6'
    # --async-save: the save at 4 is scheduled, and finalized by maybe_finalize_async_save at the next iteration
    # (training.py#L1957); a crash at the start of iteration 5 leaves iter_0000004 without .metadata and the tracker at 2.
    crashed = run(V, 'pretrain_gpt.py', *data, '--async-save', '--save', 'a', env={'MLEMU_FAULTS': 'crash@5'})
    assert crashed.returncode != 0
    assert 'scheduled an async checkpoint save at iteration       4' in crashed.stdout
    assert _files(run, 'a/iter_0000004') == ['__0_0.distcp', 'common.pt']
    assert _files(run, 'a/iter_0000002') == ['.metadata', '__0_0.distcp', 'common.pt', 'metadata.json']
    assert tracker(run, 'a') == '2'
    # --load reads the tracker's complete folder back and goes on from 2.
    again = run(V, 'pretrain_gpt.py', *data, '--async-save', '--save', 'a', '--load', 'a')
    assert again.returncode == 0, again.stderr
    assert 'at iteration 2' in again.stdout and 'iteration        6/       6' in again.stdout
    assert ' loading distributed checkpoint from a at iteration 2' in again.stdout  # checkpointing.py#L942-948
    # Saving 4 again finds the torn folder: Megatron warns and writes over it (serialization.py#L353-357).
    assert again.stdout.count('Overwriting old incomplete / corrupted checkpoint...') == 1
    assert _files(run, 'a/iter_0000004') == ['.metadata', '__0_0.distcp', 'common.pt', 'metadata.json']
    assert tracker(run, 'a') == '6'
