/*
 * bench/svg.c - hand-written SVG: two log-scale line charts side by side.
 */
#include "svg.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define CHART_W 520
#define CHART_H 360
#define MARGIN_L 70
#define MARGIN_T 50
#define PLOT_W 400
#define PLOT_H 230
#define LEGEND_ROWS 6

static const char *const colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                     "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"};
#define NCOLORS (sizeof colors / sizeof colors[0])

static const char *const quantile_names[SVG_QUANTILES] = {"p50", "p90", "p99", "p99.9", "max"};

/* XML-escaped text. */
static void put_text(FILE *o, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", o); break;
		case '>': fputs("&gt;", o); break;
		case '&': fputs("&amp;", o); break;
		case '"': fputs("&quot;", o); break;
		default: fputc(*s, o);
		}
	}
}

static void fmt_value(char *buf, size_t n, double v, bool ns)
{
	if (ns) {
		if (v < 1e3)
			snprintf(buf, n, "%.0f ns", v);
		else if (v < 1e6)
			snprintf(buf, n, "%.0f us", v / 1e3);
		else if (v < 1e9)
			snprintf(buf, n, "%.0f ms", v / 1e6);
		else
			snprintf(buf, n, "%.0f s", v / 1e9);
	} else if (v >= 1e6) {
		snprintf(buf, n, "%.0fM", v / 1e6);
	} else if (v >= 1e3) {
		snprintf(buf, n, "%.0fk", v / 1e3);
	} else {
		snprintf(buf, n, "%.0f", v);
	}
}

struct axis {
	double lo, hi; /* decades: log10 of the bounds */
};

static struct axis log_axis(double min, double max)
{
	if (min <= 0)
		min = 1;
	if (max < min)
		max = min;
	struct axis a = {floor(log10(min)), ceil(log10(max))};
	if (a.hi <= a.lo)
		a.hi = a.lo + 1;
	return a;
}

static double ypos(struct axis a, double v, int oy)
{
	double l = log10(v > 0 ? v : pow(10, a.lo));
	return oy + MARGIN_T + PLOT_H - (l - a.lo) / (a.hi - a.lo) * PLOT_H;
}

/* Frame, y decades and x labels of one chart at (ox, oy). */
static void frame(FILE *o, int ox, int oy, const char *title, const char *ylabel, struct axis a, bool ns,
                  const char *const *xlabels, int nx, const char *xlabel)
{
	fprintf(o, "<g font-family=\"sans-serif\" font-size=\"11\">\n");
	fprintf(o, "<text x=\"%d\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">", ox + MARGIN_L, oy + 25);
	put_text(o, title);
	fprintf(o, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n",
	        ox + MARGIN_L, oy + MARGIN_T, PLOT_W, PLOT_H);
	for (double d = a.lo; d <= a.hi + 1e-9; d++) {
		double y = ypos(a, pow(10, d), oy);
		char buf[32];
		fmt_value(buf, sizeof buf, pow(10, d), ns);
		fprintf(o, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ox + MARGIN_L, y,
		        ox + MARGIN_L + PLOT_W, y);
		fprintf(o, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ox + MARGIN_L - 6, y + 4,
		        buf);
	}
	for (int i = 0; i < nx; i++) {
		double x = ox + MARGIN_L + (nx == 1 ? PLOT_W / 2.0 : (double)PLOT_W * i / (nx - 1));
		fprintf(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", x, oy + MARGIN_T + PLOT_H + 16);
		put_text(o, xlabels[i]);
		fprintf(o, "</text>\n");
	}
	fprintf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", ox + MARGIN_L + PLOT_W / 2,
	        oy + MARGIN_T + PLOT_H + 34, xlabel);
	fprintf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 %d %d)\">%s</text>\n",
	        ox + 14, oy + MARGIN_T + PLOT_H / 2, ox + 14, oy + MARGIN_T + PLOT_H / 2, ylabel);
	fprintf(o, "</g>\n");
}

static double xpos(int i, int nx, int ox)
{
	return ox + MARGIN_L + (nx == 1 ? PLOT_W / 2.0 : (double)PLOT_W * i / (nx - 1));
}

static void polyline(FILE *o, const double *xs, const double *ys, int n, const char *color, const char *name,
                     bool dashed)
{
	fprintf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", color,
	        dashed ? " stroke-dasharray=\"6,4\"" : "");
	for (int i = 0; i < n; i++)
		fprintf(o, "%s%.1f,%.1f", i ? " " : "", xs[i], ys[i]);
	fprintf(o, "\"><title>");
	put_text(o, name);
	fprintf(o, "</title></polyline>\n");
	for (int i = 0; i < n; i++)
		fprintf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", xs[i], ys[i], color);
}

int svg_write(const char *path, const char *title, const struct svg_figure *f, size_t n)
{
	/* The series, in first-seen order, and the distinct thread counts. */
	const char *series[64];
	size_t nseries = 0;
	uint32_t threads[64];
	int nthreads = 0;
	double omin = INFINITY, omax = 0, lmin = INFINITY, lmax = 0;
	for (size_t i = 0; i < n; i++) {
		size_t s = 0;
		while (s < nseries && strcmp(series[s], f[i].series) != 0)
			s++;
		if (s == nseries && nseries < 64)
			series[nseries++] = f[i].series;
		int t = 0;
		while (t < nthreads && threads[t] != f[i].threads)
			t++;
		if (t == nthreads && nthreads < 64)
			threads[nthreads++] = f[i].threads;
		omin = fmin(omin, f[i].ops_per_s);
		omax = fmax(omax, f[i].ops_per_s);
		for (int q = 0; q < SVG_QUANTILES; q++) {
			if (f[i].lat_ns[q] > 0)
				lmin = fmin(lmin, f[i].lat_ns[q]);
			lmax = fmax(lmax, f[i].lat_ns[q]);
		}
	}
	for (int a = 1; a < nthreads; a++) /* insertion sort */
		for (int b = a; b > 0 && threads[b - 1] > threads[b]; b--) {
			uint32_t tmp = threads[b];
			threads[b] = threads[b - 1];
			threads[b - 1] = tmp;
		}
	FILE *o = fopen(path, "w");
	if (o == NULL)
		return -1;
	/* The legend: columns of LEGEND_ROWS. */
	int legend_rows = nseries < LEGEND_ROWS ? (int)nseries : LEGEND_ROWS;
	int legend_h = legend_rows * 16 + 20;
	fprintf(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n"
	           "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
	           "<text x=\"20\" y=\"24\" font-family=\"sans-serif\" font-size=\"16\">",
	        2 * CHART_W, CHART_H + 30 + legend_h, 2 * CHART_W, CHART_H + 30 + legend_h);
	put_text(o, title);
	fprintf(o, "</text>\n");

	/* Chart 1: operations/s against threads. */
	char tl[64][16];
	const char *tlabels[64];
	for (int t = 0; t < nthreads; t++) {
		snprintf(tl[t], sizeof tl[t], "%u", threads[t]);
		tlabels[t] = tl[t];
	}
	struct axis ao = log_axis(omin, omax);
	frame(o, 0, 30, "operations/s against threads", "operations/s", ao, false, tlabels, nthreads, "threads");
	for (size_t s = 0; s < nseries; s++) {
		double xs[64], ys[64];
		int k = 0;
		bool dashed = false;
		for (int t = 0; t < nthreads; t++)
			for (size_t i = 0; i < n; i++)
				if (f[i].threads == threads[t] && strcmp(f[i].series, series[s]) == 0) {
					dashed = f[i].lat_ns[0] == 0 && f[i].lat_ns[SVG_QUANTILES - 1] == 0;
					xs[k] = xpos(t, nthreads, 0);
					ys[k++] = ypos(ao, f[i].ops_per_s, 30);
					break;
				}
		polyline(o, xs, ys, k, colors[s % NCOLORS], series[s], dashed);
	}

	/* Chart 2: latency percentiles at each series' highest thread count. */
	struct axis al = log_axis(lmin, lmax);
	frame(o, CHART_W, 30, "latency percentiles (highest thread count)", "latency", al, true, quantile_names,
	      SVG_QUANTILES, "percentile");
	for (size_t s = 0; s < nseries; s++) {
		const struct svg_figure *top = NULL;
		for (size_t i = 0; i < n; i++)
			if (strcmp(f[i].series, series[s]) == 0 && (top == NULL || f[i].threads > top->threads))
				top = &f[i];
		if (top == NULL || top->lat_ns[SVG_QUANTILES - 1] == 0)
			continue; /* a limit: no latencies */
		double xs[SVG_QUANTILES], ys[SVG_QUANTILES];
		for (int q = 0; q < SVG_QUANTILES; q++) {
			xs[q] = xpos(q, SVG_QUANTILES, CHART_W);
			ys[q] = ypos(al, top->lat_ns[q], 30);
		}
		char name[160];
		snprintf(name, sizeof name, "%s, %u threads", top->series, top->threads);
		polyline(o, xs, ys, SVG_QUANTILES, colors[s % NCOLORS], name, false);
	}

	/* Legend. */
	for (size_t s = 0; s < nseries; s++) {
		int y = CHART_H + 40 + (int)(s % LEGEND_ROWS) * 16, x = MARGIN_L + (int)(s / LEGEND_ROWS) * 320;
		fprintf(o, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", x, y - 10,
		        colors[s % NCOLORS]);
		fprintf(o, "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"12\">", x + 18, y);
		put_text(o, series[s]);
		fprintf(o, "</text>\n");
	}
	fprintf(o, "</svg>\n");
	return fclose(o) == 0 ? 0 : -1;
}
