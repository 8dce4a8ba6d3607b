"""Generate reference/mindspeed-llm/versions.json: per supported version, the facts a pipeline planner checks.

Two kinds of facts, kept apart in the output:
  * `from_parsers`: read from reference/mindspeed-llm/flags/<version>.json (the generated parsers): entrypoints,
    --stage choices, evaluation/inference task names, --model-type-hf lists, which feature flags exist, defaults;
  * `from_source`: behaviour the parsers do not show, each with the file and line of the release where it is
    written (read at the commits in flags/<version>.json `sources`); the emulator's mlemu/version.py and
    mlemu/msl.py model the same facts.

Usage: python3 scripts/gen-mindspeed-summary.py [FLAGS_DIR] [OUT]
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FEATURE_FLAGS = ['--use-mcore-models', '--use-legacy-models', '--ckpt-format', '--use-dist-ckpt', '--async-save',
                 '--enable-high-availability', '--enable-hbmfault-repair', '--enable-worker-reboot',
                 '--enable-optimizer-state-local-copy', '--distributed-optimizer-no-replica', '--enable-elastic-training',
                 '--enable-hf2mg-convert', '--enable-mg2hf-convert', '--is-pairwise-dataset', '--no-pad-to-seq-lengths',
                 '--variable-seq-lengths', '--lora-ckpt-filter', '--qlora', '--dpo-loss-type', '--prompt-type-path']

SOURCE_FACTS = {
    '1.0.0': {
        'stages_wired': {'value': ['sft', 'dpo', 'rm'], 'source': 'mindspeed_llm/tasks/post_train/launcher.py get_trainer'},
        'mcore_default': {'value': False, 'source': 'mindspeed_llm/training/arguments.py (--use-mcore-models; Megatron '
                                                     'core_r0.6.0 legacy default)'},
        'checkpoint_format': {'value': 'torch (torch_dist only with --use-dist-ckpt)',
                              'source': 'megatron/training/checkpointing.py#L277 (core_r0.6.0)'},
        'saved_line': {'value': '  successfully saved checkpoint at iteration {:7d} to {}',
                       'source': 'megatron/training/checkpointing.py#L323'},
        'loaded_line': {'value': '  successfully loaded checkpoint from {load_dir} [ t {tp_rank}, p {pp_rank} ] at iteration {N}',
                        'source': 'megatron/training/checkpointing.py#L803-806'},
        'evaluation_data_path': {'value': 'the last --task-data-path containing the task name',
                                 'source': 'evaluation.py#L182-184'},
        'high_availability_checks': {'value': ['mindio_ttp importable', 'hbmfault-repair needs HA', 'worker-reboot needs HA',
                                               'HA refuses --use-dist-ckpt'],
                                     'source': 'mindspeed_llm/training/arguments.py#L678-691'},
    },
    '2.1.0': {
        'stages_wired': {'value': ['sft', 'dpo', 'orm', 'prm', 'simpo', 'trl_ppo'],
                         'source': 'mindspeed_llm/tasks/posttrain/launcher.py get_trainer (ray_* stages return None)'},
        'mcore_default': {'value': False, 'source': 'mindspeed_llm/training/arguments.py#L103 (--use-mcore-models), #L1499 '
                                                     '(use_legacy_models = not use_mcore_models)'},
        'checkpoint_format': {'value': 'torch (torch_dist only with --use-dist-ckpt, --dist-ckpt-format)',
                              'source': 'mindspeed_llm/training/checkpointing.py#L256'},
        'saved_line': {'value': '  successfully saved checkpoint from iteration {:7d} to {}',
                       'source': 'mindspeed_llm/training/checkpointing.py#L354'},
        'loaded_line': {'value': '  successfully loaded checkpoint from {load_dir} [ t {tp_rank}, p {pp_rank} ] at iteration {N}',
                        'source': 'megatron/training/checkpointing.py#L924-927 (core_r0.8.0)'},
        'evaluation_data_path': {'value': 'the last --task-data-path', 'source': 'evaluation.py#L199-200'},
        'high_availability_checks': {'value': ['mindio_ttp importable', 'optimizer-state-local-copy needs HA',
                                               'hbmfault-repair needs HA', 'HA refuses --use-dist-ckpt'],
                                     'source': 'mindspeed_llm/features_manager/high_availability/high_availability.py#L20-32'},
    },
    '2.3.0': {
        'stages_wired': {'value': ['sft', 'dpo'], 'source': 'mindspeed_llm/tasks/posttrain/launcher.py#L12-22'},
        'mcore_default': {'value': True, 'source': 'mindspeed_llm/features_manager/megatron_basic/training_basic.py#L19'},
        'legacy_needs_ckpt_format_torch': {'value': True, 'source': 'megatron/training/arguments.py#L294-297 (core_v0.12.1)'},
        'checkpoint_format': {'value': 'always torch: _add_dummy_args_v2 sets ckpt_format=torch, use_dist_ckpt=False after '
                                       'validation; --async-save fails at the first save',
                              'source': 'mindspeed_llm/training/arguments.py#L1277-1290,#L1507; '
                                        'mindspeed_llm/training/checkpointing.py#L166,#L187-189'},
        'saved_line': {'value': '  successfully saved checkpoint from iteration {:7d} to {}',
                       'source': 'mindspeed_llm/training/checkpointing.py#L270'},
        'loaded_line': {'value': '  successfully loaded checkpoint from {load_dir} [ t {tp_rank+1}/{tp}, p {pp_rank+1}/{pp} ] '
                                 'at iteration {N}', 'source': 'megatron/training/checkpointing.py#L1476-1479 (core_v0.12.1)'},
        'training_line_extra': {'value': ' core attn ratio (%): {:.1f} | after the throughput (with --log-throughput)',
                                'source': 'mindspeed_llm/training/training.py#L1073-1074'},
        'evaluation_data_path': {'value': 'the last --task-data-path', 'source': 'evaluation.py#L198-199'},
        'convert_v2': {'value': 'parse_known_args (unknown flags ignored); only hf->mg and mg->hf, other pairs raise a str '
                                '(TypeError); hf->mg writes iter_0000001 + tracker 1; mg->hf writes into --save-dir',
                       'source': 'convert_ckpt_v2.py#L53,#L58-66; mindspeed_llm/tasks/checkpoint/convert.py#L57-64; '
                                 'convert_mg2hf.py#L1007-1018,#L1143'},
        'online_hf2mg': {'value': '--enable-hf2mg-convert converts --load (HF) into <load>/megatron_cache_tp{tp}pp{pp}ep{ep} '
                                  'on every start and loads it (iteration 1)',
                         'source': 'mindspeed_llm/training/initialize.py#L211-262; checkpointing.py#L310-339'},
        'high_availability_checks': {'value': ['mindio_ttp importable', 'hbmfault-repair needs HA', 'HA refuses dist ckpt',
                                               'HA refuses swap-attention', 'HA refuses swap-optimizer',
                                               'elastic needs HA and the distributed optimizer, no reuse-fp32-param, '
                                               'EP=1 and CP=1', 'DP > 1 and even (replica optimizer)'],
                                     'source': 'mindspeed_llm/features_manager/high_availability/high_availability.py#L27-57; '
                                               'mindspeed_llm/core/high_availability/tft_replica_optimizer.py#L40-49'},
        'high_availability_env': {'value': 'HIGH_AVAILABILITY=dump|retry|recover|elastic-training switches the flags on',
                                  'source': 'mindspeed_llm/tasks/high_availability/high_availability_helper.py#L6-22'},
        'dying_gasp': {'value': 'iter_{N:07d}_tmp written, renamed to iter_{N:07d}, tracker N (any iteration)',
                       'source': 'mindspeed_llm/core/high_availability/tft_dump.py#L20-30,#L114-191'},
    },
}
# 2.2.0 (branch 2.2.0 337813b0, EOL): the first core_v0.12.1 release, before online conversion and MindSpeed-LLM's own
# TTP dump; lines read at that commit.
SOURCE_FACTS['2.2.0'] = {
    'stages_wired': {'value': ['sft', 'dpo', 'orm', 'prm', 'simpo', 'trl_ppo'],
                     'source': 'mindspeed_llm/tasks/posttrain/launcher.py#L16-37 (ray_* stages return None)'},
    'mcore_default': {'value': True, 'source': 'mindspeed_llm/features_manager/megatron_basic/training_basic.py#L19'},
    'legacy_needs_ckpt_format_torch': {'value': True, 'source': 'megatron/training/arguments.py#L294-297 (core_v0.12.1)'},
    'checkpoint_format': {'value': 'always torch: _add_dummy_args_v2 sets ckpt_format=torch, use_dist_ckpt=False after '
                                   'validation; --async-save fails at the first save',
                          'source': 'mindspeed_llm/training/arguments.py#L1309-1322,#L1539; '
                                    'mindspeed_llm/training/checkpointing.py#L164,#L187'},
    'saved_line': {'value': '  successfully saved checkpoint from iteration {:7d} to {}',
                   'source': 'mindspeed_llm/training/checkpointing.py#L268'},
    'loaded_line': SOURCE_FACTS['2.3.0']['loaded_line'],
    'evaluation_data_path': {'value': 'the last --task-data-path', 'source': 'evaluation.py#L198-199'},
    'dpo_reference_rng': {'value': 'the reference model loads with no_load_rng/no_load_optim unless --finetune',
                          'source': 'mindspeed_llm/tasks/posttrain/dpo/dpo_trainer.py#L337-341'},
    'convert_v2': {'value': 'parse_known_args (unknown flags ignored); only hf->mg and mg->hf, other pairs raise a str '
                            '(TypeError); hf->mg writes iter_0000001 + tracker 1; mg->hf writes into --save-dir',
                   'source': 'convert_ckpt_v2.py#L50,#L54-63; mindspeed_llm/tasks/checkpoint/convert.py#L45-49; '
                             'convert_mg2hf.py#L1076,#L1107'},
    'high_availability_checks': {'value': ['mindio_ttp importable', 'hbmfault-repair needs HA', 'HA refuses dist ckpt',
                                           'HA refuses swap-optimizer', 'elastic needs taskd.python.adaptor.elastic_training',
                                           'elastic needs HA and the distributed optimizer, no reuse-fp32-param, '
                                           'EP=1 and CP=1'],
                                 'source': 'mindspeed_llm/features_manager/high_availability/high_availability.py#L27-63'},
    'high_availability_env': {'value': 'HIGH_AVAILABILITY=dump|retry|recover|elastic-training switches the flags on',
                              'source': 'mindspeed_llm/features_manager/high_availability/high_availability_helper.py#L6-23'},
    'dying_gasp': {'value': "not MindSpeed-LLM's: tft_register_processor/tft_train of mindio_ttp.adaptor (closed source) "
                            'run the training; no tft_dump.py in the release',
                   'source': 'mindspeed_llm/training/training.py#L469-475'},
}
SOURCE_FACTS['26.0.0'] = {
    **SOURCE_FACTS['2.3.0'],
    'checkpoint_format': {'value': SOURCE_FACTS['2.3.0']['checkpoint_format']['value'],
                          'source': 'mindspeed_llm/training/arguments.py#L101-113,#L133; '
                                    'mindspeed_llm/training/checkpointing.py#L168,#L189-191'},
    'online_mg2hf': {'value': '--load with HF weights switches hf2mg and mg2hf on; each save is copied to '
                              '<hf-save-dir or save>/mg2hf_iteration<N>/',
                     'source': 'mindspeed_llm/features_manager/convert_checkpoint/convert_checkpoint.py#L56-90; '
                               'mindspeed_llm/training/checkpointing.py#L355-380; training.py#L774-779'},
    'high_availability_checks': {'value': SOURCE_FACTS['2.3.0']['high_availability_checks']['value']
                                 + ['HA refuses --disable-gloo-group', 'HA refuses LoRA'],
                                 'source': 'mindspeed_llm/features_manager/high_availability/high_availability.py#L27-65'},
}

# 26.1.0 (branch 26.1.0 ad615b3b): 26.0.0's behaviour except where noted, lines read at that commit.
SOURCE_FACTS['26.1.0'] = {
    **SOURCE_FACTS['26.0.0'],
    'stages_wired': {'value': ['sft', 'dpo'], 'source': 'mindspeed_llm/tasks/posttrain/launcher.py#L13-31 (sft picks '
                                                        'SFTTrainer, LDTSFTTrainer or DeepSeek4SFTTrainer)'},
    'mcore_default': {'value': True, 'source': 'mindspeed_llm/features_manager/megatron_basic/training_basic.py#L18'},
    'checkpoint_format': {'value': "Megatron's: --ckpt-format (default torch_dist) holds, _add_dummy_args_v2 no longer "
                                   'resets it; --async-save works with torch_dist and fails on torch',
                          'source': 'mindspeed_llm/training/arguments.py#L156-176,#L215; '
                                    'mindspeed_llm/training/checkpointing.py#L234,#L276-282'},
    'saved_line': {'value': '  successfully saved checkpoint from iteration {:7d} to {}',
                   'source': 'mindspeed_llm/training/checkpointing.py#L418'},
    'training_line_extra': {'value': ' core attn ratio (%): {:.1f} | after the throughput (with --log-throughput)',
                            'source': 'mindspeed_llm/training/training.py#L1166-1167'},
    'evaluation_data_path': {'value': 'the last --task-data-path', 'source': 'evaluation.py#L199-200'},
    'dpo_reference_rng': {'value': 'the reference model loads with no_load_rng/no_load_optim unless --finetune',
                          'source': 'mindspeed_llm/tasks/posttrain/dpo/dpo_trainer.py#L379-382'},
    'convert_v2': {'value': 'parse_known_args, then ValueError "Unrecognized argument" for anything left over; '
                            'mamba2, longcat, deepseek4 by --model-type-hf, else only hf->mg and mg->hf, other pairs '
                            'raise Exception; hf->mg writes iter_0000001 + tracker 1; mg->hf writes into --save-dir',
                   'source': 'convert_ckpt_v2.py#L132-134,#L139-153; mindspeed_llm/tasks/checkpoint/convert.py#L45-51; '
                             'convert_mg2hf.py#L1672,#L1728'},
    'online_hf2mg': {'value': '--enable-hf2mg-convert converts --load (HF) into <load>/megatron_cache_tp{tp}pp{pp}ep{ep} '
                              'on every start and loads it (iteration 1); refused with --ckpt-format torch_dist; '
                              'glm45-moe replaced by glm45-air and glm45',
                     'source': 'mindspeed_llm/training/initialize.py#L188-291 (models #L245-248); '
                               'checkpointing.py#L464; features_manager/convert_checkpoint/convert_checkpoint.py#L113-114'},
    'online_mg2hf': {'value': '--load with HF weights switches hf2mg and mg2hf on; each save is copied to '
                              '<hf-save-dir or save>/mg2hf_iteration<N>/; LoRA refused ("Lora is not supported")',
                     'source': 'mindspeed_llm/features_manager/convert_checkpoint/convert_checkpoint.py#L109-158; '
                               'mindspeed_llm/training/checkpointing.py#L502-511; training.py#L833-840'},
    'high_availability_checks': {'value': SOURCE_FACTS['26.0.0']['high_availability_checks']['value'],
                                 'source': 'mindspeed_llm/features_manager/high_availability/high_availability.py#L35-79 '
                                           '(mindio_ttp by importlib.util.find_spec, #L37-38)'},
    'high_availability_env': {'value': 'HIGH_AVAILABILITY=dump|retry|recover|elastic-training switches the flags on',
                              'source': 'mindspeed_llm/tasks/high_availability/high_availability_helper.py#L6-23'},
    'dying_gasp': {'value': 'iter_{N:07d}_tmp written, renamed to iter_{N:07d}, tracker N (any iteration)',
                   'source': 'mindspeed_llm/core/high_availability/tft_dump.py#L22-32,#L116-195'},
}


def from_parsers(doc: dict) -> dict:
    eps = doc['entrypoints']
    train = {r['flag']: r for r in eps['pretrain_gpt.py']}
    out = {
        'entrypoints': sorted(eps),
        'missing_entrypoints': doc['missing_entrypoints'],
        'stage_choices': train.get('--stage', {}).get('choices'),
        'evaluation_tasks': doc['task_names'].get('evaluation.py', {}).get('tasks'),
        'inference_tasks': doc['task_names'].get('inference.py', {}).get('tasks'),
        'flags_present': {f: f in train for f in FEATURE_FLAGS},
        'defaults': {f: train[f]['default'] for f in ('--ckpt-format', '--distributed-timeout-minutes', '--use-mcore-models')
                     if f in train},
        'renamed_flags': doc['renamed_flags'],
    }
    if 'convert_ckpt_v2.py' in eps:
        v2 = {r['flag']: r for r in eps['convert_ckpt_v2.py']}
        out['convert_v2_model_type_hf'] = v2['--model-type-hf']['choices']
    combos = doc.get('convert_ckpt_plugin_combinations', {})
    if combos:
        v1 = {r['flag']: r for r in next(iter(combos.values()))['flags']}
        out['convert_v1_model_type_hf'] = v1.get('--model-type-hf', {}).get('choices')
    return out


def main() -> None:
    flags_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'reference', 'mindspeed-llm', 'flags')
    out_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, 'reference', 'mindspeed-llm', 'versions.json')
    result = {'generator': 'scripts/gen-mindspeed-summary.py', 'versions': {}}
    # Every version whose flags are generated (gen-mindspeed-flags.py SUPPORTED); each needs its SOURCE_FACTS row.
    versions = sorted((f[:-5] for f in os.listdir(flags_dir) if f.endswith('.json')),
                      key=lambda v: tuple(int(x) for x in v.split('.')))
    for version in versions:
        with open(os.path.join(flags_dir, f'{version}.json'), encoding='utf-8') as f:
            doc = json.load(f)
        result['versions'][version] = {
            'sources': {k: {'ref': v['ref'], 'commit': v['commit']} for k, v in doc['sources'].items()},
            'from_parsers': from_parsers(doc),
            'from_source': SOURCE_FACTS[version],
        }
    with open(out_path, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write('\n')
    print({v: e['from_parsers']['stage_choices'] for v, e in result['versions'].items()})


if __name__ == '__main__':
    main()
