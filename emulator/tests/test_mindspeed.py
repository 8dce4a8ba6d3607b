"""The MindSpeed-LLM roots (emulator/roots/mindspeed-llm-<version>/): each release's entrypoints, defaults and failures.

These run the roots' entrypoint files as processes (python3 <root>/<entry>.py ...), as linkflow does, in a
temporary directory with fixture inputs made by tools/make_fixtures.py and preprocess_data.py.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

EMULATOR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTS = os.path.join(EMULATOR, 'roots')

Run = Callable[..., subprocess.CompletedProcess]

MODEL = ['--tensor-model-parallel-size', '1', '--pipeline-model-parallel-size', '1', '--num-layers', '2',
         '--hidden-size', '64', '--num-attention-heads', '4', '--seq-length', '128', '--max-position-embeddings', '128',
         '--tokenizer-type', 'PretrainedFromHF', '--tokenizer-name-or-path', 'hf', '--bf16']
TRAIN = MODEL + ['--micro-batch-size', '1', '--global-batch-size', '2', '--lr', '1e-5', '--min-lr', '1e-6',
                 '--train-iters', '6', '--log-interval', '2', '--save-interval', '3', '--eval-iters', '0',
                 '--use-distributed-optimizer']


def entry(version: str, name: str) -> str:
    return os.path.join(ROOTS, f'mindspeed-llm-{version}', name)


@pytest.fixture(scope='module')
def work(tmp_path_factory: pytest.TempPathFactory) -> str:
    """hf/ (a fake HF model), data/sft (alpaca, instruction), data/pair (pairwise), data/mlpair (ModelLink's pairwise),
    data/pre_text_document."""
    d = str(tmp_path_factory.mktemp('msl'))
    tools = os.path.join(EMULATOR, 'tools', 'make_fixtures.py')

    def sh(*argv: str) -> None:
        subprocess.run([sys.executable, *argv], cwd=d, check=True, capture_output=True)

    sh(tools, 'hf-model', 'hf', '--layers', '2', '--hidden', '64', '--heads', '4')
    sh(tools, 'alpaca-jsonl', 'alpaca.jsonl', '--docs', '12')
    sh(tools, 'pretrain-jsonl', 'pre.jsonl', '--docs', '40')
    sh(tools, 'eval', 'evaldata', '--questions', '2')
    os.makedirs(os.path.join(d, 'data'))
    pre = entry('2.3.0', 'preprocess_data.py')
    common = ['--tokenizer-type', 'PretrainedFromHF', '--tokenizer-name-or-path', 'hf', '--workers', '1',
              '--log-interval', '1000']
    sh(pre, '--input', 'alpaca.jsonl', '--output-prefix', 'data/sft', '--handler-name', 'AlpacaStyleInstructionHandler',
       '--prompt-type', 'qwen3', *common)
    sh(pre, '--input', 'alpaca.jsonl', '--output-prefix', 'data/pair', '--handler-name', 'AlpacaStylePairwiseHandler',
       '--prompt-type', 'qwen3', *common)
    sh(pre, '--input', 'pre.jsonl', '--output-prefix', 'data/pre', *common)
    # ModelLink's own pairwise data (its root's preprocess_data.py, examples/mcore/llama2/data_convert_llama2_pairwise.sh).
    sh(os.path.join(EMULATOR, 'preprocess_data.py'), '--input', 'alpaca.jsonl', '--output-prefix', 'data/mlpair',
       '--handler-name', 'AlpacaStylePairwiseHandler', '--prompt-type', 'llama2', *common)
    return d


@pytest.fixture
def run(work: str, tmp_path: os.PathLike) -> Run:
    """run(version, entry, *args, env={...}) in a fresh copy-free directory that sees the module's fixtures."""
    cwd = str(tmp_path)
    for name in ('hf', 'data', 'evaldata'):
        os.symlink(os.path.join(work, name), os.path.join(cwd, name))

    def go(version: str, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        path = entry(version, name) if version != 'modellink' else os.path.join(EMULATOR, name)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(('MLEMU_', 'HIGH_AVAILABILITY'))}
        full_env.update({'MLEMU_ITER_TIME_MS': '1', **(env or {})})
        return subprocess.run([sys.executable, path, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                              timeout=120)

    go.cwd = cwd  # type: ignore[attr-defined]
    return go


def tracker(run: Run, directory: str) -> str:
    with open(os.path.join(run.cwd, directory, 'latest_checkpointed_iteration.txt')) as f:  # type: ignore[attr-defined]
        return f.read()


def sft(run: Run, version: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run(version, 'posttrain_gpt.py', *TRAIN, '--stage', 'sft', '--is-instruction-dataset', '--data-path', 'data/sft',
               *extra, env=env)


# --- roots and flags ------------------------------------------------------------------------------------------

def test_each_root_has_exactly_its_releases_entrypoints(run: Run) -> None:
    for version, has_v2 in (('1.0.0', False), ('2.1.0', False), ('2.3.0', True), ('26.0.0', True), ('26.1.0', True)):
        assert os.path.isfile(entry(version, 'posttrain_gpt.py'))
        assert os.path.isfile(entry(version, 'convert_ckpt_v2.py')) == has_v2
    missing = run('2.1.0', 'convert_ckpt_v2.py', '--load-dir', 'hf', '--save-dir', 'out')
    assert missing.returncode == 2
    assert "can't open file" in missing.stderr


def test_flags_are_the_releases_own(run: Run) -> None:
    # --enable-hf2mg-convert exists from 2.3.0 on only; the renamed --use-deter-comp is still accepted there.
    old = run('1.0.0', 'pretrain_gpt.py', *TRAIN, '--data-path', 'data/pre_text_document', '--enable-hf2mg-convert')
    assert old.returncode == 2
    assert 'unrecognized arguments: --enable-hf2mg-convert' in old.stderr
    new = run('2.3.0', 'pretrain_gpt.py', *TRAIN, '--data-path', 'data/pre_text_document', '--use-deter-comp')
    assert new.returncode == 0, new.stderr


# --- posttrain_gpt.py --stage ---------------------------------------------------------------------------------

def test_stage_choices_and_unwired_stages(run: Run) -> None:
    rejected = run('2.3.0', 'posttrain_gpt.py', *TRAIN, '--stage', 'orm', '--data-path', 'data/sft')
    assert rejected.returncode == 2
    assert "argument --stage: invalid choice: 'orm'" in rejected.stderr
    # ray_ppo is a parser choice on 2.3.0 but get_trainer returns None for it.
    unwired = run('2.3.0', 'posttrain_gpt.py', *TRAIN, '--stage', 'ray_ppo', '--data-path', 'data/sft')
    assert unwired.returncode == 1
    assert 'Unknown Stage: ray_ppo' in unwired.stdout
    assert "AttributeError: 'NoneType' object has no attribute 'train'" in unwired.stderr
    no_stage = run('2.1.0', 'posttrain_gpt.py', *TRAIN, '--data-path', 'data/sft')
    assert "AttributeError: 'NoneType' object has no attribute 'train'" in no_stage.stderr


def test_sft_trains_and_saves_with_the_releases_log_lines(run: Run) -> None:
    r = sft(run, '2.3.0', '--save', 'out')
    assert r.returncode == 0, r.stderr
    assert '------------------------ MindSpeed-LLM Arguments ------------------------' in r.stdout
    assert '  successfully saved checkpoint from iteration       6 to out' in r.stdout
    assert tracker(run, 'out') == '6'
    resumed = sft(run, '2.3.0', '--save', 'out', '--load', 'out', '--train-iters', '8')
    assert '  successfully loaded checkpoint from out [ t 1/1, p 1/1 ] at iteration 6' in resumed.stdout
    old = sft(run, '1.0.0', '--save', 'old')
    assert '  successfully saved checkpoint at iteration       6 to old' in old.stdout
    assert '[ t 0, p 0 ] at iteration 6' in sft(run, '1.0.0', '--save', 'old', '--load', 'old', '--train-iters', '8').stdout


def test_dpo_needs_pairwise_data(run: Run) -> None:
    args = [*TRAIN, '--stage', 'dpo', '--is-pairwise-dataset']
    ok = run('2.3.0', 'posttrain_gpt.py', *args, '--data-path', 'data/pair')
    assert ok.returncode == 0, ok.stderr
    assert '| rewards/accuracies: ' in ok.stdout and '| lm loss: ' in ok.stdout
    wrong = run('2.3.0', 'posttrain_gpt.py', *args, '--data-path', 'data/sft')
    assert wrong.returncode == 1
    assert "KeyError: 'chosen_labels'" in wrong.stderr


def test_pretrain_gpt_builds_no_instruction_dataset_on_mindspeed_llm(run: Run) -> None:
    r = run('2.3.0', 'pretrain_gpt.py', *TRAIN, '--finetune', '--is-instruction-dataset', '--data-path', 'data/sft')
    assert r.returncode == 1
    assert "FileNotFoundError: [Errno 2] No such file or directory: 'data/sft.idx'" in r.stderr
    ml = run('modellink', 'pretrain_gpt.py', *TRAIN, '--finetune', '--is-instruction-dataset', '--data-path', 'data/sft')
    assert ml.returncode == 0, ml.stderr


def test_dpo_lora_reference_takes_lora_load_under_finetune(run: Run) -> None:
    """DPOTrainer._init_reference_model (2.3.0 posttrain/dpo/dpo_trainer.py#L363-386): under --finetune the
    reference gets the --lora-load weights merged over --ref-model/--load (checkpointing.py#L55-78); without it
    is_load_refer is set and the reference loads the base alone."""
    run('2.3.0', 'convert_ckpt_v2.py', '--load-dir', 'hf', '--save-dir', 'w')
    lora = ['--lora-r', '8', '--lora-alpha', '16', '--lora-target-modules', 'linear_qkv']
    dpo = [*TRAIN, '--stage', 'dpo', '--is-pairwise-dataset', '--data-path', 'data/pair', *lora]
    first = run('2.3.0', 'posttrain_gpt.py', *dpo, '--load', 'w', '--finetune', '--save', 'out', env={'MLEMU_FAULTS': 'crash@5'})
    assert first.returncode != 0 and tracker(run, 'out') == '3'
    # A warm restart (--finetune, --lora-load at the run's checkpoints): policy and reference both take them,
    # whatever --ref-model names.
    warm = run('2.3.0', 'posttrain_gpt.py', *dpo, '--load', 'w', '--ref-model', 'w', '--finetune', '--lora-load', 'out',
               '--save', 'warm', '--train-iters', '3')
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.count(' loading checkpoint from out at iteration 3') == 2
    # Without --finetune the reference loads w alone.
    exact = run('2.3.0', 'posttrain_gpt.py', *dpo, '--load', 'w', '--no-load-optim', '--no-load-rng', '--lora-load', 'out',
                '--save', 'exact')
    assert exact.returncode == 0, exact.stderr
    assert exact.stdout.count(' loading checkpoint from out at iteration 3') == 1
    # The first attempt's command again: the reference is w, as it was.
    again = run('2.3.0', 'posttrain_gpt.py', *dpo, '--load', 'w', '--finetune', '--save', 'again')
    assert again.returncode == 0 and ' loading checkpoint from out' not in again.stdout


def test_dpo_reference_on_2_1_0_loads_refer_model_iter(run: Run) -> None:
    """Not fine-tuning, 2.1.0's reference loads iteration --refer-model-iter (default 1) of --ref-model, not the one its
    tracker names (mindspeed_llm/training/checkpointing.py#L83-85, #L153-154); 2.3.0 reads the tracker."""
    dpo = [*TRAIN, '--stage', 'dpo', '--is-pairwise-dataset', '--data-path', 'data/pair']
    for version in ('2.1.0', '2.3.0'):
        assert run(version, 'posttrain_gpt.py', *dpo, '--save', f'a{version}').returncode == 0
        assert tracker(run, f'a{version}') == '6'
        first = run(version, 'posttrain_gpt.py', *dpo, '--load', f'a{version}', '--finetune', '--save', f'b{version}',
                    env={'MLEMU_FAULTS': 'crash@5'})
        assert first.returncode != 0 and tracker(run, f'b{version}') == '3'
    bad = run('2.1.0', 'posttrain_gpt.py', *dpo, '--load', 'b2.1.0', '--ref-model', 'a2.1.0', '--save', 'b2.1.0')
    assert 'could not load the checkpoint' in bad.stdout and 'iter_0000001' in bad.stdout
    assert 'iteration        6/       6' not in bad.stdout
    good = run('2.1.0', 'posttrain_gpt.py', *dpo, '--load', 'b2.1.0', '--ref-model', 'a2.1.0', '--refer-model-iter', '6',
               '--save', 'b2.1.0')
    assert good.returncode == 0, good.stderr
    assert ' loading checkpoint from a2.1.0 at iteration 6' in good.stdout and 'iteration        6/       6' in good.stdout
    later = run('2.3.0', 'posttrain_gpt.py', *dpo, '--load', 'b2.3.0', '--ref-model', 'a2.3.0', '--save', 'b2.3.0')
    assert later.returncode == 0, later.stderr
    assert ' loading checkpoint from a2.3.0 at iteration 6' in later.stdout


# --- legacy/mcore and the checkpoint format -------------------------------------------------------------------

def args_value(stdout: str, name: str) -> str:
    line = next(ln for ln in stdout.splitlines() if ln.startswith(f'  {name} ...'))
    return line.rsplit(' ', 1)[1]


def test_mcore_is_the_default_from_core_v0_12_1(run: Run) -> None:
    data = ['--data-path', 'data/pre_text_document']
    assert args_value(run('2.1.0', 'pretrain_gpt.py', *TRAIN, *data).stdout, 'use_mcore_models') == 'False'
    assert args_value(run('2.1.0', 'pretrain_gpt.py', *TRAIN, *data, '--use-mcore-models').stdout, 'use_mcore_models') == 'True'
    assert args_value(run('2.3.0', 'pretrain_gpt.py', *TRAIN, *data).stdout, 'use_mcore_models') == 'True'
    legacy = run('2.3.0', 'pretrain_gpt.py', *TRAIN, *data, '--use-legacy-models')
    assert legacy.returncode == 1
    assert "AssertionError: legacy model format only supports the 'torch' checkpoint format." in legacy.stderr
    legacy_torch = run('2.3.0', 'pretrain_gpt.py', *TRAIN, *data, '--use-legacy-models', '--ckpt-format', 'torch')
    assert legacy_torch.returncode == 0, legacy_torch.stderr
    assert args_value(legacy_torch.stdout, 'use_mcore_models') == 'False'


def test_expert_groups_per_core(run: Run) -> None:
    """EP 2 on one device: the expert groups need data × context parallel ranks (2.1.0) or a world EP divides (2.3.0)."""
    data = ['--data-path', 'data/pre_text_document', '--use-mcore-models', '--num-experts', '2']
    r21 = run('2.1.0', 'pretrain_gpt.py', *TRAIN, *data, '--expert-model-parallel-size', '2')
    assert r21.returncode == 1
    assert 'RuntimeError: data_parallel_size * context_parallel_size (1) is not divisible by expert_model_parallel_size' \
        in r21.stderr
    assert 'mindspeed_llm/core/parallel_state.py", line 295, in wrapper' in r21.stderr
    r23 = run('2.3.0', 'pretrain_gpt.py', *TRAIN, *data, '--expert-model-parallel-size', '2')
    assert r23.returncode == 1
    assert 'RuntimeError: decoder world_size (1) is not divisible by expert_tensor_model_pipeline_parallel size (2)' \
        in r23.stderr


def test_torch_fsdp2_needs_torch_dist_and_writes_torch(run: Run) -> None:
    """Megatron core_v0.12.1 validates --use-torch-fsdp2 (arguments.py#L510-528); 2.3.0 then writes torch anyway."""
    data = ['--data-path', 'data/pre_text_document']
    fsdp = [a for a in TRAIN if a != '--use-distributed-optimizer'] + data + [
        '--use-torch-fsdp2', '--no-gradient-accumulation-fusion', '--untie-embeddings-and-output-weights']
    optimizer = run('2.3.0', 'pretrain_gpt.py', *TRAIN, *data, '--use-torch-fsdp2')
    assert optimizer.returncode == 1
    assert "AssertionError: --use-torch-fsdp2 is not supported with MCore's distributed optimizer" in optimizer.stderr
    pinned = run('2.3.0', 'pretrain_gpt.py', *fsdp, '--ckpt-format', 'torch', env={'CUDA_DEVICE_MAX_CONNECTIONS': '2'})
    assert 'AssertionError: --use-torch-fsdp2 requires --ckpt-format torch_dist or torch_dcp' in pinned.stderr
    one = run('2.3.0', 'pretrain_gpt.py', *fsdp, '--ckpt-format', 'torch_dist', env={'CUDA_DEVICE_MAX_CONNECTIONS': '1'})
    assert 'AssertionError: FSDP always requires CUDA_DEVICE_MAX_CONNECTIONS value large than one' in one.stderr
    ok = run('2.3.0', 'pretrain_gpt.py', *fsdp, '--ckpt-format', 'torch_dist', '--save', 'fsdp',
             env={'CUDA_DEVICE_MAX_CONNECTIONS': '2'})
    assert ok.returncode == 0, ok.stderr
    assert 'saving checkpoint at iteration       3 to fsdp in torch format' in ok.stdout
    assert os.path.isfile(os.path.join(run.cwd, 'fsdp', 'iter_0000003', 'mp_rank_00', 'model_optim_rng.pt'))  # type: ignore[attr-defined]


def test_checkpoint_format_per_release(run: Run) -> None:
    data = ['--data-path', 'data/pre_text_document']
    # 2.3.0 forces torch after validation (_add_dummy_args_v2), whatever --ckpt-format says.
    forced = run('2.3.0', 'pretrain_gpt.py', *TRAIN, *data, '--ckpt-format', 'torch_dist', '--save', 'dist')
    assert 'saving checkpoint at iteration       3 to dist in torch format' in forced.stdout
    assert os.path.isfile(os.path.join(run.cwd, 'dist', 'iter_0000003', 'mp_rank_00', 'model_optim_rng.pt'))  # type: ignore[attr-defined]
    # 2.1.0 (core_r0.8.0) with --use-dist-ckpt writes torch_dist: one directory per iteration, no mp_rank_*.
    dist = run('2.1.0', 'pretrain_gpt.py', *TRAIN, *data, '--use-mcore-models', '--use-dist-ckpt', '--save', 'd21')
    assert 'in torch_dist format' in dist.stdout
    it = os.path.join(run.cwd, 'd21', 'iter_0000003')  # type: ignore[attr-defined]
    assert os.path.isfile(os.path.join(it, '.metadata')) and not os.path.exists(os.path.join(it, 'mp_rank_00'))
    resumed = run('2.1.0', 'pretrain_gpt.py', *TRAIN, *data, '--use-mcore-models', '--use-dist-ckpt', '--load', 'd21',
                  '--train-iters', '8')
    assert 'successfully loaded checkpoint from d21 [ t 0, p 0 ] at iteration 6' in resumed.stdout
    # 2.1.0 async save (torch_dist): scheduled at the save, the tracker written when it is finalized (the next step).
    a21 = run('2.1.0', 'pretrain_gpt.py', *TRAIN, *data, '--use-mcore-models', '--use-dist-ckpt', '--async-save',
              '--save', 'a21', env={'MLEMU_FAULTS': 'crash@4'})
    assert '  scheduled an async checkpoint save at iteration       3 to a21' in a21.stdout
    assert a21.returncode == 1 and not os.path.exists(os.path.join(run.cwd, 'a21', 'latest_checkpointed_iteration.txt'))  # type: ignore[attr-defined]
    # Async save needs torch_dist, which 2.3.0 never keeps, even when asked for: Megatron's save_checkpoint raises.
    async_save = run('2.3.0', 'pretrain_gpt.py', *TRAIN, *data, '--ckpt-format', 'torch_dist', '--async-save',
                     '--save', 'a')
    assert async_save.returncode == 1
    assert 'NotImplementedError: Async checkpoint save not implemented for legacy checkpoints' in async_save.stderr
    assert 'megatron/training/checkpointing.py", line 397, in save_checkpoint' in async_save.stderr


# --- converters -----------------------------------------------------------------------------------------------

def test_convert_v2_directions_and_layout(run: Run) -> None:
    hf2mg = run('2.3.0', 'convert_ckpt_v2.py', '--load-model-type', 'hf', '--save-model-type', 'mg', '--load-dir', 'hf',
                '--save-dir', 'mg', '--target-tensor-parallel-size', '2', '--model-type-hf', 'qwen3', '--no-such-flag', 'x')
    assert hf2mg.returncode == 0, hf2mg.stderr  # parse_known_args: unknown flags are ignored on 2.3.0
    assert tracker(run, 'mg') == '1'
    for tp in ('00', '01'):
        assert os.path.isfile(os.path.join(run.cwd, 'mg', 'iter_0000001', f'mp_rank_{tp}', 'model_optim_rng.pt'))  # type: ignore[attr-defined]
    mg2hf = run('2.3.0', 'convert_ckpt_v2.py', '--load-model-type', 'mg', '--save-model-type', 'hf', '--load-dir', 'mg',
                '--save-dir', 'back', '--hf-cfg-dir', 'hf')
    assert mg2hf.returncode == 0, mg2hf.stderr
    out = os.listdir(os.path.join(run.cwd, 'back'))  # type: ignore[attr-defined]
    # 2.3.0's parser has no --hf-cfg-dir (ignored), and Mg2HfConvert writes the weights and their index only.
    assert sorted(out) == ['model-00001-of-000002.safetensors', 'model-00002-of-000002.safetensors',
                           'model.safetensors.index.json']
    # 26.0.0 copies the HF side files from --hf-cfg-dir (convert_mg2hf.py#L195-217).
    copied = run('26.0.0', 'convert_ckpt_v2.py', '--load-model-type', 'mg', '--save-model-type', 'hf', '--load-dir',
                 'mg', '--save-dir', 'back26', '--hf-cfg-dir', 'hf')
    assert copied.returncode == 0, copied.stderr
    out26 = os.listdir(os.path.join(run.cwd, 'back26'))  # type: ignore[attr-defined]
    assert {'config.json', 'tokenizer_config.json', 'tokenizer.model', 'model.safetensors.index.json'} <= set(out26)
    # Without it 26.0.0 writes no config either (copy_hf_cfg runs only when hf_cfg_dir is set, #L65-66); a directory
    # that is not there fails before any weight is written (#L196-197).
    bare = run('26.0.0', 'convert_ckpt_v2.py', '--load-model-type', 'mg', '--save-model-type', 'hf', '--load-dir', 'mg',
               '--save-dir', 'bare26')
    assert bare.returncode == 0, bare.stderr
    assert 'config.json' not in os.listdir(os.path.join(run.cwd, 'bare26'))  # type: ignore[attr-defined]
    missing = run('26.0.0', 'convert_ckpt_v2.py', '--load-model-type', 'mg', '--save-model-type', 'hf', '--load-dir',
                  'mg', '--save-dir', 'gone26', '--hf-cfg-dir', 'no-such-dir')
    assert missing.returncode == 1
    assert 'FileNotFoundError: Hugging Face directory not found: no-such-dir' in missing.stderr
    assert not [f for f in os.listdir(os.path.join(run.cwd, 'gone26')) if f.endswith('.safetensors')]  # type: ignore[attr-defined]
    same = run('2.3.0', 'convert_ckpt_v2.py', '--load-model-type', 'mg', '--save-model-type', 'mg', '--load-dir', 'mg',
               '--save-dir', 'x')
    assert same.returncode == 1
    assert 'TypeError: exceptions must derive from BaseException' in same.stderr


def test_convert_v2_model_lists_per_release(run: Run) -> None:
    args = ['--load-dir', 'hf', '--save-dir', 'mg', '--model-type-hf', 'glm5']
    assert run('26.0.0', 'convert_ckpt_v2.py', *args).returncode == 0
    r = run('2.3.0', 'convert_ckpt_v2.py', *args)
    assert r.returncode == 2
    assert "argument --model-type-hf: invalid choice: 'glm5'" in r.stderr


def test_convert_v1_on_mindspeed_llm(run: Run) -> None:
    base = ['--model-type', 'GPT', '--load-dir', 'hf', '--save-dir', 'mg', '--load-model-type', 'hf',
            '--save-model-type', 'mg', '--target-tensor-parallel-size', '1', '--tokenizer-model', 'hf/tokenizer.json',
            '--model-type-hf', 'llama2', '--use-mcore-models']
    r = run('2.3.0', 'convert_ckpt.py', *base)
    assert r.returncode == 0, r.stderr
    assert 'This version of weight conversion tool is approaching end-of-life.' in r.stdout
    assert 'Loaded mindspeed_llm.tasks.checkpoint.loader_hf as the loader.' in r.stdout
    legacy = run('2.3.0', 'convert_ckpt.py', '--model-type', 'GPT', '--load-dir', 'mg', '--save-dir', 'x')
    assert 'Unable to load loader plugin megatron. Exiting.' in legacy.stderr


# --- resume ---------------------------------------------------------------------------------------------------

def test_finetune_resets_the_iteration_and_load_flags_are_honoured(run: Run) -> None:
    assert sft(run, '2.3.0', '--save', 'r').returncode == 0
    again = sft(run, '2.3.0', '--save', 'r', '--load', 'r', '--finetune', '--train-iters', '2')
    assert 'successfully loaded checkpoint from r [ t 1/1, p 1/1 ] at iteration 0' in again.stdout
    assert 'iteration        2/       2' in again.stdout
    run('2.3.0', 'convert_ckpt_v2.py', '--load-dir', 'hf', '--save-dir', 'conv')
    no_optim = sft(run, '2.3.0', '--load', 'conv')
    assert no_optim.returncode == 0  # Megatron's sys.exit() after the message
    assert 'Unable to load optimizer from checkpoint' in no_optim.stdout
    ok = sft(run, '2.3.0', '--load', 'conv', '--no-load-optim', '--no-load-rng')
    assert 'at iteration 1' in ok.stdout and 'iteration        6/       6' in ok.stdout


def test_online_hf2mg_conversion_restarts_from_iteration_1(run: Run) -> None:
    args = ['--load', 'hf', '--enable-hf2mg-convert', '--model-type-hf', 'qwen3', '--no-load-optim', '--no-load-rng',
            '--save', 'on']
    first = sft(run, '2.3.0', *args)
    assert first.returncode == 0, first.stderr
    cache = os.path.join(run.cwd, 'hf', 'megatron_cache_tp1pp1ep1')  # type: ignore[attr-defined]
    assert open(os.path.join(cache, 'latest_checkpointed_iteration.txt')).read() == '1'
    assert f'successfully loaded checkpoint from {os.path.join("hf", "megatron_cache_tp1pp1ep1")}' in first.stdout
    # A "resume" that keeps the flag and the HF --load starts over from the converted iteration 1.
    again = sft(run, '2.3.0', *args, '--train-iters', '8')
    assert 'at iteration 1' in again.stdout and 'iteration        2/       8' in again.stdout
    not_hf = sft(run, '2.3.0', '--load', 'data', '--enable-hf2mg-convert')
    assert 'ValueError: When enable_hf2mg_convert is enabled, path data is not a valid HuggingFace path.' in not_hf.stderr
    model = sft(run, '2.3.0', '--load', 'hf', '--enable-hf2mg-convert', '--model-type-hf', 'gemma')
    assert "ValueError: Current --enable-hf2mg-convert does not support model type 'gemma'." in model.stderr


def test_mg2hf_copies_on_26(run: Run) -> None:
    # --load with HF weights switches both directions on by itself (26.0.0 convert_checkpoint.py#L76-78).
    r = sft(run, '26.0.0', '--load', 'hf', '--no-load-optim', '--no-load-rng', '--save', 'm')
    assert r.returncode == 0, r.stderr
    saved = sorted(os.listdir(os.path.join(run.cwd, 'm')))  # type: ignore[attr-defined]
    assert 'mg2hf_iteration3' in saved and 'mg2hf_iteration6' in saved and 'iter_0000006' in saved


# --- evaluation -----------------------------------------------------------------------------------------------

def test_evaluation_tasks_and_swallowed_errors(run: Run, work: str) -> None:
    assert sft(run, '2.3.0', '--save', 'e').returncode == 0
    ev = [*MODEL, '--micro-batch-size', '1', '--load', 'e', '--max-new-tokens', '2']
    cmmlu_dir = os.path.join(work, 'cmmlu')
    os.makedirs(cmmlu_dir, exist_ok=True)
    with open(os.path.join(cmmlu_dir, 'agronomy.csv'), 'w') as f:
        f.write(',Question,A,B,C,D,Answer\n1,q,a,b,c,d,A\n2,q,a,b,c,d,B\n')
    cmmlu = run('2.3.0', 'evaluation.py', *ev, '--task', 'cmmlu', '--task-data-path', cmmlu_dir)
    assert cmmlu.returncode == 0, cmmlu.stderr
    assert 'INFO:mindspeed_llm.tasks.evaluation.eval_impl.cmmlu_eval:cmmlu acc = ' in cmmlu.stdout
    assert 'INFO:__main__:CMMLU Running Time:, ' in cmmlu.stdout
    ppl = run('2.3.0', 'evaluation.py', *ev, '--task', 'mmlu_ppl', '--task-data-path', 'evaldata/mmlu/test')
    assert 'mmlu_ppl:mmlu acc = ' in ppl.stdout
    broken = run('2.3.0', 'evaluation.py', *ev, '--task', 'mmlu', '--task-data-path', 'nowhere')
    assert broken.returncode == 0
    assert "INFO:__main__:[Errno 2] No such file or directory: 'nowhere'" in broken.stdout
    assert ' acc = ' not in broken.stdout
    # 1.0.0 has no cmmlu task: nothing runs, nothing is said.
    old = run('1.0.0', 'evaluation.py', *ev, '--task', 'cmmlu', '--task-data-path', cmmlu_dir)
    assert old.returncode == 0 and 'acc = ' not in old.stdout and 'Running Time' not in old.stdout


# --- high availability ----------------------------------------------------------------------------------------

def test_high_availability_checks(run: Run) -> None:
    data = [*TRAIN, '--data-path', 'data/pre_text_document']
    missing = run('2.3.0', 'pretrain_gpt.py', *data, '--enable-high-availability')
    assert 'AssertionError: High availability feature requires the mindio_ttp package but is not installed.' in missing.stderr
    assert "ModuleNotFoundError: No module named 'mindio_ttp'" in missing.stderr
    ttp = {'MLEMU_MINDIO_TTP': '1'}
    dp1 = run('2.3.0', 'pretrain_gpt.py', *data, '--enable-high-availability', env=ttp)
    assert 'ValueError: High availability do not support data parallel world size is 1!' in dp1.stderr
    by_env = run('2.3.0', 'pretrain_gpt.py', *data, env={**ttp, 'HIGH_AVAILABILITY': 'dump'})
    assert 'data parallel world size is 1!' in by_env.stderr
    repair = run('2.3.0', 'pretrain_gpt.py', *data, '--enable-hbmfault-repair')
    assert 'switch of the enable hbmfault repair is unsupported, please enable high availability feature first.' in repair.stderr
    lora = ['--lora-r', '8', '--lora-alpha', '16', '--lora-target-modules', 'linear_qkv']
    r26 = run('26.0.0', 'pretrain_gpt.py', *data, '--enable-high-availability', *lora, env=ttp)
    assert 'please disable lora-target-modules first.' in r26.stderr
    r23 = run('2.3.0', 'pretrain_gpt.py', *data, '--enable-high-availability', *lora, env=ttp)
    assert 'lora-target-modules' not in r23.stderr  # 2.3.0 has no LoRA check; it fails on DP=1 instead
    assert 'data parallel world size is 1!' in r23.stderr
    # 1.0.0 / 2.1.0: their own checks (distributed checkpoints, worker reboot, the optimizer's local copy).
    dist = run('2.1.0', 'pretrain_gpt.py', *data, '--enable-high-availability', '--use-dist-ckpt', env=ttp)
    assert 'AssertionError: switch of the high availability feature is unsupported' in dist.stderr
    copy = run('2.1.0', 'pretrain_gpt.py', *data, '--enable-optimizer-state-local-copy')
    assert 'switch of the local copy is unsupported, please enable high availability feature first.' in copy.stderr
    reboot = run('1.0.0', 'pretrain_gpt.py', *data, '--enable-worker-reboot')
    assert 'switch of the enable worker reboot is unsupported, please enable high availability feature first.' in reboot.stderr
    assert run('2.1.0', 'pretrain_gpt.py', *data, '--enable-worker-reboot').returncode == 2  # not a 2.1.0 flag


def test_dying_gasp_checkpoint_off_the_save_interval(run: Run) -> None:
    data = [*TRAIN, '--data-path', 'data/pre_text_document', '--enable-high-availability', '--save', 'ha',
            '--train-iters', '8']
    env = {'MLEMU_MINDIO_TTP': '1', 'WORLD_SIZE': '2', 'MLEMU_FAULTS': 'crash@5'}
    r = run('2.3.0', 'pretrain_gpt.py', *data, env=env)
    assert r.returncode == 1
    assert 'INFO:ttp_logger:rank 0 rename success' in r.stdout
    assert tracker(run, 'ha') == '4'
    names = os.listdir(os.path.join(run.cwd, 'ha'))  # type: ignore[attr-defined]
    assert 'iter_0000004' in names and not any(n.endswith('_tmp') for n in names)
    resumed = run('2.3.0', 'pretrain_gpt.py', *data, '--load', 'ha', env={**env, 'MLEMU_FAULTS': ''})
    assert 'successfully loaded checkpoint from ha [ t 1/1, p 1/1 ] at iteration 4' in resumed.stdout
    # Without HA the crash saves nothing.
    plain = run('2.3.0', 'pretrain_gpt.py', *TRAIN, '--data-path', 'data/pre_text_document', '--save', 'no',
                '--train-iters', '8', env={'MLEMU_FAULTS': 'crash@5'})
    assert plain.returncode == 1 and tracker(run, 'no') == '3'


# --- the training line ----------------------------------------------------------------------------------------

def test_training_line_core_attn_ratio_on_core_v0_12_1(run: Run) -> None:
    args = [*TRAIN, '--data-path', 'data/pre_text_document', '--log-throughput']
    assert ' core attn ratio (%): ' in run('2.3.0', 'pretrain_gpt.py', *args).stdout
    assert ' core attn ratio (%): ' not in run('2.1.0', 'pretrain_gpt.py', *args).stdout


def test_version_files_name_their_sources() -> None:
    for version in ('1.0.0', '2.1.0', '2.3.0', '26.0.0', '26.1.0'):
        with open(os.path.join(EMULATOR, 'versions', f'mindspeed-llm-{version}.json')) as f:
            doc = json.load(f)
        assert doc['version'] == version
        assert len(doc['sources']['mindspeed_llm']['commit']) == 40


def test_inference_tasks_have_no_log_probs_on_mindspeed_llm(run: Run) -> None:
    assert sft(run, '2.3.0', '--save', 'i').returncode == 0
    args = [*MODEL, '--micro-batch-size', '1', '--load', 'i', '--max-new-tokens', '4']
    gone = run('2.3.0', 'inference.py', *args, '--task', 'return_output_log_probs')
    assert gone.returncode == 1
    assert 'ValueError: Task name incorrect.' in gone.stderr
    greedy = run('2.3.0', 'inference.py', *args, '--task', 'greedy')
    assert greedy.returncode == 0, greedy.stderr


def test_preprocess_handlers_of_mindspeed_llm(run: Run) -> None:
    args = ['--tokenizer-type', 'PretrainedFromHF', '--tokenizer-name-or-path', 'hf', '--prompt-type', 'qwen3',
            '--workers', '1']
    os.makedirs(os.path.join(run.cwd, 'out'))  # type: ignore[attr-defined]
    with open(os.path.join(run.cwd, 'a.jsonl'), 'w') as f:  # type: ignore[attr-defined]
        f.write('{"instruction": "q", "input": "", "output": "a"}\n')
    ppo = run('2.3.0', 'preprocess_data.py', '--input', 'a.jsonl', '--output-prefix', 'out/ppo',
              '--handler-name', 'PPOAlpacaStyleInstructionHandler', *args)
    assert ppo.returncode == 0, ppo.stderr
    written = sorted(os.listdir(os.path.join(run.cwd, 'out')))  # type: ignore[attr-defined]
    assert 'ppo_packed_input_ids_document.idx' in written and not any('labels' in n for n in written)
    # ModelLink's validation does not know the handler with --prompt-type.
    ml = run('modellink', 'preprocess_data.py', '--input', 'a.jsonl', '--output-prefix', 'out/ml',
             '--handler-name', 'PPOAlpacaStyleInstructionHandler', *args[:4], '--prompt-type', 'llama2')
    assert 'If specify prompt_type , handler name must be in:' in ml.stderr



# --- ModelLink's trainer.py (AutoTrainer) -----------------------------------------------------------------------

def ml_dpo(run: Run, *extra: str, data: str = 'data/mlpair', env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The flags of ModelLink's examples/mcore/llama2/dpo_llama2_7b_ptd.sh (RL_ARGS, DATA_ARGS)."""
    return run('modellink', 'trainer.py', *TRAIN, '--stage', 'dpo', '--dpo-loss-type', 'sigmoid', '--is-pairwise-dataset',
               '--is-instruction-dataset', '--prompt-type', 'llama2', '--data-path', data, *extra, env=env)


def convert_v1_modellink(run: Run, save_dir: str) -> None:
    r = run('modellink', 'convert_ckpt.py', '--model-type', 'GPT', '--load-dir', 'hf', '--save-dir', save_dir,
            '--load-model-type', 'hf', '--save-model-type', 'mg', '--target-tensor-parallel-size', '1',
            '--tokenizer-model', 'hf/tokenizer.json', '--model-type-hf', 'llama2')
    assert r.returncode == 0, r.stderr


def test_modellink_trainer_py_runs_dpo_with_its_reference_model(run: Run) -> None:
    convert_v1_modellink(run, 'w')
    r = ml_dpo(run, '--load', 'w', '--finetune', '--no-load-optim', '--no-load-rng', '--save', 'out')
    assert r.returncode == 0, r.stderr
    assert '------------------------ ModelLink Arguments ------------------------' in r.stdout
    assert '| rewards/accuracies: ' in r.stdout and '| lm loss: ' in r.stdout
    # The policy, then the frozen reference model (DPOTrainer._init_reference_model) load the same weights.
    assert r.stdout.count('successfully loaded checkpoint from w [ t 0, p 0 ] at iteration 0') == 2
    assert '  successfully saved checkpoint at iteration       6 to out' in r.stdout
    assert tracker(run, 'out') == '6'


def test_modellink_trainer_py_reads_pairs_and_has_no_unknown_stage(run: Run) -> None:
    convert_v1_modellink(run, 'w')
    wrong = ml_dpo(run, '--load', 'w', '--finetune', data='data/sft')
    assert wrong.returncode == 1
    assert "KeyError: 'chosen_labels'" in wrong.stderr
    assert 'modellink/tasks/preprocess/decoder_packed_mtf_dataset.py' in wrong.stderr
    # --stage rm and no --stage run BaseTrainer (launcher.py#L18-21): plain training, no 'Unknown Stage'.
    base = run('modellink', 'trainer.py', *TRAIN, '--is-instruction-dataset', '--data-path', 'data/sft')
    assert base.returncode == 0, base.stderr
    assert 'Unknown Stage' not in base.stdout and 'rewards/accuracies' not in base.stdout
    bad = run('modellink', 'trainer.py', *TRAIN, '--stage', 'sft', '--data-path', 'data/sft')
    assert bad.returncode == 2 and "argument --stage: invalid choice: 'sft'" in bad.stderr


def test_modellink_dpo_resume_and_its_reference_model(run: Run) -> None:
    convert_v1_modellink(run, 'w')
    first = ml_dpo(run, '--load', 'w', '--finetune', '--no-load-optim', '--no-load-rng', '--save', 'out',
                   env={'MLEMU_FAULTS': 'crash@5'})
    assert first.returncode != 0 and tracker(run, 'out') == '3'
    # Resumed with --load <its checkpoints> only: the reference model is the policy being resumed (iteration 3).
    same = ml_dpo(run, '--load', 'out', '--save', 'same', '--train-iters', '4')
    assert same.stdout.count('successfully loaded checkpoint from out [ t 0, p 0 ] at iteration 3') == 2
    # --ref-model at the converted weights, which hold no RNG state: without --no-load-rng Megatron exits (status 0).
    no_rng = ml_dpo(run, '--load', 'out', '--ref-model', 'w', '--save', 'out')
    assert no_rng.returncode == 0 and 'Unable to load rng state from checkpoint' in no_rng.stdout
    assert 'iteration        6/       6' not in no_rng.stdout
    resumed = ml_dpo(run, '--load', 'out', '--ref-model', 'w', '--no-load-rng', '--save', 'out')
    assert resumed.returncode == 0, resumed.stderr
    assert 'successfully loaded checkpoint from out [ t 0, p 0 ] at iteration 3' in resumed.stdout
    assert 'successfully loaded checkpoint from w [ t 0, p 0 ] at iteration 1' in resumed.stdout
    assert 'iteration        6/       6' in resumed.stdout and tracker(run, 'out') == '6'
