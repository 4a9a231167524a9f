# Every experiment's tables and figures, each one file a user can ask for: frozen-embedding
# probes, fine-tuned vs from scratch, the papers' numbered tables (ours beside the paper's),
# pre-training histories and the figures an experiment lists under `figures`.


rule probe_table:
    input:
        models=lambda wc: T.pretrained_models(config, wc.experiment),
        train=lambda wc: T.split_path(config, wc.experiment, "probe_train"),
        test=lambda wc: T.split_path(config, wc.experiment, "probe_test"),
    output:
        csv=report(
            "results/tables/{experiment}/probes.csv",
            caption="../report/probes.rst",
            category=paper_category,
            subcategory="probes",
        ),
        md="results/tables/{experiment}/probes.md",
        tex="results/tables/{experiment}/probes.tex",
    log:
        "logs/tables/{experiment}/probes.log",
    benchmark:
        "benchmarks/tables/{experiment}/probes.tsv"
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        exp=experiment_cfg,
        seed=config["seed"],
        device=config.get("device", "auto"),
    script:
        "../scripts/experiment.py"


rule finetune_summary:
    input:
        lambda wc: T.finetune_predictions(config, wc.experiment),
    output:
        csv=report(
            "results/tables/{experiment}/finetune.csv",
            caption="../report/finetune.rst",
            category=paper_category,
            subcategory="fine-tuning",
        ),
        md="results/tables/{experiment}/finetune.md",
        tex="results/tables/{experiment}/finetune.tex",
        png=report(
            "results/figures/{experiment}/finetune.png",
            caption="../report/finetune.rst",
            category=paper_category,
            subcategory="fine-tuning",
        ),
        pdf="results/figures/{experiment}/finetune.pdf",
    log:
        "logs/tables/{experiment}/finetune.log",
    benchmark:
        "benchmarks/tables/{experiment}/finetune.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        exp=experiment_cfg,
    script:
        "../scripts/experiment.py"


rule paper_table:
    # a paper's numbered table, e.g. results/tables/jbot/table2 (jetforge.paper_outputs)
    input:
        unpack(lambda wc: paper_output_inputs(wc, "tables")),
    output:
        csv=report(
            "results/tables/{paper}/{name}.csv",
            caption="../report/table.rst",
            category=paper_output_category,
            subcategory="{name}",
        ),
        md="results/tables/{paper}/{name}.md",
        tex="results/tables/{paper}/{name}.tex",
    log:
        "logs/tables/{paper}/{name}.log",
    benchmark:
        "benchmarks/tables/{paper}/{name}.tsv"
    wildcard_constraints:
        name=PAPER_OUTPUT_NAME,
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: paper_output_mem_mb(wc, "tables"),
        runtime=lambda wc: paper_output_runtime(wc, "tables"),
    params:
        cfg=lambda wc: paper_output_config(wc, "tables"),
        section="tables",
    script:
        "../scripts/paper_output.py"


rule paper_figure:
    # a paper's numbered figure, e.g. results/figures/mpm/fig3 (jetforge.paper_outputs)
    input:
        unpack(lambda wc: paper_output_inputs(wc, "paper_figures")),
    output:
        png=report(
            "results/figures/{paper}/{name}.png",
            caption="../report/paper_figure.rst",
            category=paper_output_category,
            subcategory="{name}",
        ),
        pdf="results/figures/{paper}/{name}.pdf",
    log:
        "logs/figures/{paper}/{name}.log",
    benchmark:
        "benchmarks/figures/{paper}/{name}.tsv"
    wildcard_constraints:
        name=r"fig[0-9]+[a-z]*",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: paper_output_mem_mb(wc, "paper_figures"),
        runtime=lambda wc: paper_output_runtime(wc, "paper_figures"),
    params:
        cfg=lambda wc: paper_output_config(wc, "paper_figures"),
        section="paper_figures",
    script:
        "../scripts/paper_output.py"


rule paper_claims:
    # the paper's headline claims, each with a verdict computed from our tables' seeds
    input:
        lambda wc: T.claims_inputs(config, wc.paper),
    output:
        csv=report(
            "results/tables/{paper}/claims.csv",
            caption="../report/claims.rst",
            category=lambda wc: paper_output_category(wc),
            subcategory="claims",
        ),
        md="results/tables/{paper}/claims.md",
        tex="results/tables/{paper}/claims.tex",
    log:
        "logs/tables/{paper}/claims.log",
    benchmark:
        "benchmarks/tables/{paper}/claims.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        produced=lambda wc: T.claims_inputs(config, wc.paper),
    script:
        "../scripts/claims.py"


rule claims:
    # every paper's claims in one table (../shared/PAPERS.md "Claims")
    input:
        lambda wc: [f"results/tables/{p}/claims.csv" for p in T.papers_in(config)],
    output:
        csv=report(
            "results/tables/claims.csv",
            caption="../report/claims.rst",
            category="claims",
        ),
        md="results/tables/claims.md",
        tex="results/tables/claims.tex",
    log:
        "logs/tables/claims.log",
    benchmark:
        "benchmarks/tables/claims.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/claims.py"


rule task_figure:
    input:
        lambda wc: [
            p
            for fs in T.predictions_for(config, wc.experiment, wc.task).values()
            for p in fs
        ],
    output:
        png=report(
            "results/figures/{experiment}/{kind}_{task}.png",
            caption="../report/task_figure.rst",
            category=paper_category,
            subcategory="{task}",
        ),
        pdf="results/figures/{experiment}/{kind}_{task}.pdf",
    log:
        "logs/figures/{experiment}/{kind}_{task}.log",
    benchmark:
        "benchmarks/figures/{experiment}/{kind}_{task}.tsv"
    wildcard_constraints:
        kind="roc|scores",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        exp=experiment_cfg,
    script:
        "../scripts/figures.py"


rule pretrain_history_figure:
    input:
        lambda wc: T.pretrain_histories(config, wc.experiment, wc.augset),
    output:
        png=report(
            "results/figures/{experiment}/pretrain_history_{augset}.png",
            caption="../report/history.rst",
            category=paper_category,
            subcategory="pre-training",
        ),
        pdf="results/figures/{experiment}/pretrain_history_{augset}.pdf",
    log:
        "logs/figures/{experiment}/pretrain_history_{augset}.log",
    benchmark:
        "benchmarks/figures/{experiment}/pretrain_history_{augset}.tsv"
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        exp=experiment_cfg,
    script:
        "../scripts/experiment.py"


rule embedding_figure:
    input:
        lambda wc: T.embedding_path(config, wc.experiment, wc.augset),
    output:
        png=report(
            "results/figures/{experiment}/{kind}_{augset}.png",
            caption="../report/embedding.rst",
            category=paper_category,
            subcategory="embedding",
        ),
        pdf="results/figures/{experiment}/{kind}_{augset}.pdf",
    log:
        "logs/figures/{experiment}/{kind}_{augset}.log",
    benchmark:
        "benchmarks/figures/{experiment}/{kind}_{augset}.tsv"
    wildcard_constraints:
        kind="tsne|corner",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        exp=experiment_cfg,
        seed=config["seed"],
    script:
        "../scripts/figures.py"
