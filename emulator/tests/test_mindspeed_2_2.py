"""MindSpeed-LLM 2.2.0 (emulator/roots/mindspeed-llm-2.2.0/, EOL): the first core_v0.12.1 release, read from the 2.2.0
branch head (reference/README.md lists the commit). The fixtures are test_mindspeed.py's, imported by name: the
tests' parameters `run` then shadow the import, as pytest intends.
"""
# ruff: noqa: F811

import os

from test_mindspeed import TRAIN, Run, run, sft, work  # noqa: F401 (run and work are fixtures)

V = '2.2.0'


def test_trainers_and_checkpoint_format(run: Run) -> None:
    # launcher.py#L16-37 still wires simpo (not emulated: exit 3, not the AttributeError of an unwired stage); 2.3.0's
    # parser no longer takes it.
    simpo = sft(run, V, '--stage', 'simpo')
    assert simpo.returncode == 3, simpo.stderr
    assert "argument --stage: invalid choice: 'simpo'" in sft(run, '2.3.0', '--stage', 'simpo').stderr
    # mcore by default; _add_dummy_args_v2 resets --ckpt-format (arguments.py#L1321-1322): torch is written.
    data = [*TRAIN, '--data-path', 'data/pre_text_document', '--log-throughput']
    r = run(V, 'pretrain_gpt.py', *data, '--save', 'c')
    assert r.returncode == 0, r.stderr
    assert 'in torch format' in r.stdout
    assert os.path.isfile(os.path.join(run.cwd, 'c', 'iter_0000006', 'mp_rank_00', 'model_optim_rng.pt'))  # type: ignore[attr-defined]
    # training.py has no core attn ratio yet.
    assert ' core attn ratio (%): ' not in r.stdout
    # Asked for torch_dist, it validates and writes torch; --async-save then raises at the first save: in Megatron's
    # save_checkpoint (core_v0.12.1 checkpointing.py#L396-397), or in MindSpeed-LLM's wrapper, which 2.2.0 patches in
    # for LoRA only (features_manager/finetune/lora.py#L90-91; mindspeed_llm/training/checkpointing.py#L187).
    dist = run(V, 'pretrain_gpt.py', *data, '--ckpt-format', 'torch_dist', '--save', 'd')
    assert dist.returncode == 0, dist.stderr
    assert 'in torch format' in dist.stdout
    a = run(V, 'pretrain_gpt.py', *data, '--ckpt-format', 'torch_dist', '--async-save', '--save', 'a')
    assert a.returncode == 1
    assert 'megatron/training/checkpointing.py", line 397, in save_checkpoint' in a.stderr
    lora = sft(run, V, '--lora-r', '8', '--lora-alpha', '16', '--lora-target-modules', 'linear_qkv', '--ckpt-format',
               'torch_dist', '--async-save', '--save', 'l')
    assert lora.returncode == 1
    assert 'mindspeed_llm/training/checkpointing.py", line 187, in wrapper' in lora.stderr
    assert 'NotImplementedError: Async checkpoint save not implemented for legacy checkpoints' in lora.stderr


def test_no_online_conversion_and_no_v1_warning(run: Run) -> None:
    r = sft(run, V, '--load', 'hf', '--enable-hf2mg-convert')
    assert r.returncode == 2
    assert 'unrecognized arguments: --enable-hf2mg-convert' in r.stderr
    v1 = run(V, 'convert_ckpt.py', '--model-type', 'GPT', '--load-dir', 'hf', '--save-dir', 'mg', '--load-model-type', 'hf',
             '--save-model-type', 'mg', '--target-tensor-parallel-size', '1', '--tokenizer-model', 'hf/tokenizer.json',
             '--model-type-hf', 'llama2', '--use-mcore-models')
    assert v1.returncode == 0, v1.stderr
    assert 'approaching end-of-life' not in v1.stdout
    # convert_ckpt_v2.py#L50: parse_known_args, unknown flags ignored.
    v2 = run(V, 'convert_ckpt_v2.py', '--load-dir', 'hf', '--save-dir', 'mg2', '--model-type-hf', 'qwen3', '--no-such', 'x')
    assert v2.returncode == 0, v2.stderr


def test_high_availability_checks(run: Run) -> None:
    data = [*TRAIN, '--data-path', 'data/pre_text_document']
    ttp = {'MLEMU_MINDIO_TTP': '1'}
    # high_availability.py#L41-47: elastic training needs MindCluster's TaskD.
    elastic = run(V, 'pretrain_gpt.py', *data, '--enable-high-availability', '--enable-elastic-training', env=ttp)
    assert 'AssertionError: enable elastic training requires the taskd.python.adaptor.elastic_training package' in elastic.stderr
    # No swap-attention check there (2.3.0 #L39-41 has one): it fails later, on the replica optimizer's DP = 1.
    swap = run(V, 'pretrain_gpt.py', *data, '--enable-high-availability', '--swap-attention', env=ttp)
    assert 'swap attention' not in swap.stderr
    assert 'swap attention' in run('2.3.0', 'pretrain_gpt.py', *data, '--enable-high-availability', '--swap-attention',
                                   env=ttp).stderr
