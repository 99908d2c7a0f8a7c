"""`minirun compare`: the virtualization-vs-containerization table, measured on this host.

    units.py    the probes and workloads: named busybox sh snippets run unchanged everywhere
    runners.py  how to run them on the host, in a minirun container, under runc, in a minirun VM
    measure.py  what is measured, in which order, with the host-side checks; returns raw data
    report.py   rows and cells from the raw data; terminal table, markdown, JSON
    plot.py     a PNG bar chart (matplotlib, imported only for --plot)
    schema.py   a small JSON-schema checker for docs/compare-schema.json
    cli.py      the click command

    from minirun.compare import measure, report
    data = measure.measure(measure.Options(rootfs="/var/lib/minirun/rootfs/busybox", runs=3))
    print(report.render_text(data, report.build_rows(data)))
"""
